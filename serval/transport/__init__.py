"""serval's one wire protocol: length-prefixed frames of msgspec-encoded messages.

Shared by every runtime (unix sockets on one machine, TCP across machines).
"""
