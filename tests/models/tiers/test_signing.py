"""Sealed warm-tier blobs: what was not written with the key is never handed out."""

from __future__ import annotations

import pytest

from serval.models.tiers import TamperedBlobError, seal, unseal
from serval.models.tiers.signing import OVERHEAD

SECRET = b"a-secret-of-sixteen+"


@pytest.mark.parametrize("secret", [None, SECRET])
def test_round_trip(secret: bytes | None) -> None:
    blob = seal("k1", b"payload", secret)
    assert len(blob) == OVERHEAD + len(b"payload")
    payload = unseal("k1", blob, secret)
    assert isinstance(payload, memoryview) and bytes(payload) == b"payload"


@pytest.mark.parametrize("secret", [None, SECRET])
def test_a_changed_byte_is_rejected(secret: bytes | None) -> None:
    blob = bytearray(seal("k1", b"payload", secret))
    blob[-1] ^= 1
    with pytest.raises(TamperedBlobError, match="signature does not match"):
        unseal("k1", bytes(blob), secret)


def test_a_valid_blob_under_another_key_is_rejected() -> None:
    blob = seal("tenant-a", b"model of a", SECRET)
    with pytest.raises(TamperedBlobError):
        unseal("tenant-b", blob, SECRET)


def test_whoever_lacks_the_key_cannot_forge_or_downgrade() -> None:
    with pytest.raises(TamperedBlobError):
        unseal("k", seal("k", b"evil", b"another-key-0000000"), SECRET)
    with pytest.raises(TamperedBlobError, match="unkeyed digest, expected an HMAC"):
        unseal("k", seal("k", b"evil", None), SECRET)
    with pytest.raises(TamperedBlobError, match="carries an HMAC, expected an unkeyed"):
        unseal("k", seal("k", b"payload", SECRET), None)


def test_not_a_blob() -> None:
    with pytest.raises(TamperedBlobError, match="bad header"):
        unseal("k", b"PK\x03\x04 a zip file", None)
    with pytest.raises(TamperedBlobError, match="bad header"):
        unseal("k", b"", None)
