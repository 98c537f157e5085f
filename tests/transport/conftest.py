"""Transport tests run in a process that has an instance secret, as every serval process does."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from serval.transport import auth


@pytest.fixture(autouse=True)
def instance_secret() -> Iterator[bytes]:
    secret = auth.new_secret()
    previous = auth._secret
    auth.set_instance_secret(secret)
    yield secret
    auth._secret = previous
