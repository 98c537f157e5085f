"""The instance secret: a private file, handed to children over a pipe, never shown."""

from __future__ import annotations

import os
import stat

import psutil
import pytest

import serval
from serval import _driver, _secret
from serval.exceptions import ConfigError, ServalError
from serval.transport import auth
from tests.utils import serval_children, short_tmpdir


@serval.deployment
class Hello:
    def __call__(self, request: object) -> str:
        return "hello"


def test_file_is_0600_replaced_atomically_and_read_back() -> None:
    with short_tmpdir() as d:
        first = _secret.create_file(d)
        path = _secret.secret_path(d)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert _secret.read_file(d) == first and len(first) == auth.SECRET_BYTES
        second = _secret.create_file(d)  # a new instance: a new secret, no stray temp files
        assert second != first and _secret.read_file(d) == second
        assert os.listdir(d) == ["secret"]


def test_a_secret_file_others_can_read_is_refused() -> None:
    with short_tmpdir() as d:
        _secret.create_file(d)
        os.chmod(_secret.secret_path(d), 0o644)
        with pytest.raises(ConfigError, match="must be a 0600 file"):
            _secret.read_file(d)


def test_a_missing_or_damaged_secret_file_is_a_clear_error() -> None:
    with short_tmpdir() as d:
        with pytest.raises(ServalError, match="has no secret file"):
            _secret.read_file(d)
        fd = os.open(_secret.secret_path(d), os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, b"short")
        os.close(fd)
        with pytest.raises(ConfigError, match="damaged"):
            _secret.read_file(d)


def test_handed_to_a_child_over_a_pipe(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = auth.new_secret()
    with _secret.for_child(secret) as (env, fd):
        assert env == {"SERVAL_SECRET_FD": str(fd)}
        # What a child sees: the descriptor (its own copy) named in its environment.
        monkeypatch.setenv("SERVAL_SECRET_FD", str(os.dup(fd)))
        assert _secret.from_parent() == secret
        assert "SERVAL_SECRET_FD" not in os.environ  # not inherited by grandchildren
    assert _secret.from_parent() is None


def test_never_on_a_command_line_or_in_an_environment(serve: str, serval_home: str) -> None:
    serval.run(Hello.bind(), name="h", route_prefix="/h")
    secret = _secret.read_file(os.path.join(serval_home, "t"))
    assert auth.instance_secret() == secret  # the driver loaded it
    children = serval_children()
    assert {"serval.controller", "serval.replica", "serval.proxy"} <= {
        part for c in children for part in c.cmdline() if part.startswith("serval.")
    }
    for child in children:
        try:
            cmdline = " ".join(child.cmdline()).encode()
            with open(f"/proc/{child.pid}/environ", "rb") as f:
                environ = f.read()
        except (psutil.Error, FileNotFoundError):
            continue
        for blob in (cmdline, environ):
            assert secret not in blob and secret.hex().encode() not in blob


def test_a_driver_without_the_secret_file_gets_a_clear_error(serve: str, serval_home: str) -> None:
    os.unlink(_secret.secret_path(os.path.join(serval_home, "t")))
    with pytest.raises(ServalError, match="has no secret file"):
        _driver.connect()
