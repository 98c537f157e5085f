"""The HTTP proxy: an ASGI app on uvicorn that routes requests to replicas."""
