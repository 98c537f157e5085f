"""Sealing warm-tier blobs, so a shared cache cannot make a replica unpickle code.

Model files are often pickles (joblib, pickle, torch): loading one runs whatever code it
names. The registry is trusted; the warm tier sits between it and the replicas and may
be writable by more people (a shared Redis). So every blob is sealed with an
HMAC-SHA256 tag over the key it is stored under and its payload, and a blob whose tag
does not verify is discarded *before* anything reads it — the model then comes from the
registry again. Binding the key stops an attacker from swapping two valid blobs.

Without a key (the default disk tier, on one machine, in a directory only the replicas'
user can write), blobs carry a plain SHA-256 digest: it catches torn and corrupted files,
not attackers. A reader with a key rejects unkeyed blobs, so nobody can downgrade one.

Format: ``b"SVW1" | alg (1 byte: 0 digest, 1 HMAC-SHA256) | tag (32 bytes) | payload``.
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["OVERHEAD", "TamperedBlobError", "seal", "unseal"]

_MAGIC = b"SVW1"
_DIGEST = 0
_HMAC = 1
_TAG_BYTES = 32
OVERHEAD = len(_MAGIC) + 1 + _TAG_BYTES


class TamperedBlobError(Exception):
    """The blob's tag does not verify (tampered, corrupted, or sealed with another key).

    Internal: the warm tier discards the blob, counts it and reloads from the registry.
    """


def _tag(alg: int, key: str, payload: bytes | memoryview, secret: bytes | None) -> bytes:
    h = hmac.new(secret, digestmod=hashlib.sha256) if alg == _HMAC and secret else hashlib.sha256()
    encoded = key.encode()
    h.update(_MAGIC + bytes([alg]) + len(encoded).to_bytes(4, "big") + encoded)
    h.update(payload)
    return h.digest()


def seal(key: str, payload: bytes, secret: bytes | None) -> bytes:
    """``payload`` with a header that :func:`unseal` verifies against ``key``."""
    alg = _HMAC if secret else _DIGEST
    return _MAGIC + bytes([alg]) + _tag(alg, key, payload, secret) + payload


def unseal(key: str, blob: bytes, secret: bytes | None) -> memoryview:
    """The payload of ``blob`` if its tag verifies for ``key``; else
    :class:`TamperedBlobError`. Returns a view (no copy of a large payload)."""
    view = memoryview(blob)
    if len(view) < OVERHEAD or bytes(view[: len(_MAGIC)]) != _MAGIC:
        raise TamperedBlobError("not a serval warm-tier blob (bad header)")
    alg = view[len(_MAGIC)]
    expected_alg = _HMAC if secret else _DIGEST
    if alg != expected_alg:
        kinds = {_DIGEST: "an unkeyed digest", _HMAC: "an HMAC"}
        raise TamperedBlobError(
            f"the blob carries {kinds.get(alg, f'unknown algorithm {alg}')}, "
            f"expected {kinds[expected_alg]}"
        )
    tag = bytes(view[len(_MAGIC) + 1 : OVERHEAD])
    payload = view[OVERHEAD:]
    if not hmac.compare_digest(tag, _tag(alg, key, payload, secret)):
        raise TamperedBlobError("the signature does not match the content")
    return payload
