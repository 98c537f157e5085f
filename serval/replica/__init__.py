"""The replica process: runs user code behind serval's framed protocol."""
