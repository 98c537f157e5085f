"""Where the instance secret lives, and how each serval process gets it.

The secret (32 random bytes, :mod:`serval.transport.auth`) is made when an instance
starts and never goes on a command line, into an environment variable, or into a log:

- local runtime: the file ``<state dir>/secret`` (``0600``, written to a temporary name
  and renamed into place), read by the controller and by drivers that connect;
- ray runtime: Ray's internal KV, in the serval namespace (``runtime/_ray_cluster.py``);
- child processes (replicas, proxies, a controller under a Ray actor): their parent
  writes it into a pipe whose read end the child inherits; ``SERVAL_SECRET_FD`` says
  which descriptor (a number, not the secret).
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator

from serval import _env, _statedir
from serval.exceptions import ConfigError, ServalError
from serval.transport import auth

SECRET_FILE = "secret"


def secret_path(state_dir: str) -> str:
    return os.path.join(state_dir, SECRET_FILE)


def create_file(state_dir: str) -> bytes:
    """A new secret in ``state_dir`` (replacing a previous instance's); returns it."""
    secret = auth.new_secret()
    final = secret_path(state_dir)
    tmp = f"{final}.{os.getpid()}.tmp"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, secret)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, final)
    return secret


def read_file(state_dir: str) -> bytes:
    """The secret in ``state_dir``; a clear error when it is missing or not private."""
    path = secret_path(state_dir)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise ServalError(
            f"the serval instance has no secret file {path} (started by an older serval, "
            "or its state directory was cleaned): `serval shutdown`, then start it again"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read the serval instance secret {path}: {exc}") from None
    try:
        st = os.fstat(fd)
        if st.st_uid != os.geteuid() or st.st_mode & 0o077:
            raise ConfigError(
                f"refusing the serval instance secret {path}: it must be a 0600 file of "
                f"uid {os.geteuid()}, and it is {stat.S_IMODE(st.st_mode):04o}, uid {st.st_uid}"
            )
        secret = os.read(fd, auth.SECRET_BYTES + 1)
    finally:
        os.close(fd)
    if len(secret) != auth.SECRET_BYTES:
        raise ConfigError(f"the serval instance secret {path} is damaged (wrong size)")
    return secret


@contextlib.contextmanager
def for_child(secret: bytes) -> Iterator[tuple[dict[str, str], int]]:
    """``(env, fd)`` to start a child with: pass ``fd`` in ``pass_fds`` and add ``env``;
    the child reads the secret with :func:`from_parent`."""
    read_fd, write_fd = os.pipe()
    try:
        os.write(write_fd, secret)  # 32 bytes: fits in the pipe's buffer, never blocks
    finally:
        os.close(write_fd)
    try:
        yield {_env.SECRET_FD_VAR: str(read_fd)}, read_fd
    finally:
        os.close(read_fd)


def from_parent() -> bytes | None:
    """The secret our parent handed us (:func:`for_child`), or None when it gave none."""
    fd = _env.take_secret_fd()
    if fd < 0:
        return None
    chunks = []
    try:
        while chunk := os.read(fd, auth.SECRET_BYTES + 1):
            chunks.append(chunk)
    except OSError as exc:
        raise ServalError(f"cannot read the instance secret from descriptor {fd}: {exc}") from None
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
    return b"".join(chunks)


def load(state_dir: str | None = None) -> None:
    """Make the instance secret this process's: the one our parent handed us, else (a
    controller on the local runtime) the file in ``state_dir``."""
    secret = from_parent()
    if secret is None and state_dir is not None:
        _statedir.check_private_dir(state_dir)
        secret = read_file(state_dir)
    if secret is None:
        raise ServalError(
            "this serval process was started without the instance secret: it is started "
            "by the controller, not by hand"
        )
    auth.set_instance_secret(secret)
