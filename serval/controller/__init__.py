"""The controller: desired state, the reconcile loop, health checks, publication."""
