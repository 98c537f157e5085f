"""Choosing a replica for each request: in proxies and in every handle."""
