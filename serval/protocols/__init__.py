"""Wire protocols serval speaks besides its own: :mod:`serval.protocols.oip` (the Open
Inference Protocol v2 of KServe, Triton and MLServer)."""
