"""Logs, metrics and status output."""
