"""The instance's state directory is private: ours, ``0700``, never writable by others.

Sockets, the instance secret, logs and checkpoints live there, so a directory another
user owns (a pre-created ``/tmp/serval-$UID``) or can write to (swap a socket, plant a
secret) is refused with an error naming the path and its owner, at start and when a
driver connects.
"""

from __future__ import annotations

import os
import pwd
import stat

from serval.exceptions import ConfigError


def _user(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def check_private_dir(path: str) -> None:
    """Raise ConfigError unless ``path`` is a directory of this user that nobody else can
    write to."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ConfigError(f"the serval state directory {path} does not exist") from None
    if not stat.S_ISDIR(st.st_mode):
        raise ConfigError(f"the serval state directory {path} is not a directory")
    me = os.geteuid()
    if st.st_uid != me:
        raise ConfigError(
            f"refusing the serval state directory {path}: it is owned by {_user(st.st_uid)}, "
            f"not by {_user(me)}, who runs serval. Remove it, or set SERVAL_HOME to a "
            "directory of yours"
        )
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ConfigError(
            f"refusing the serval state directory {path}: it is writable by "
            f"{'group and others' if st.st_mode & stat.S_IWOTH else 'its group'} "
            f"(mode {stat.S_IMODE(st.st_mode):04o}; owner {_user(st.st_uid)}). "
            f"`chmod 700 {path}`, or set SERVAL_HOME to a private directory"
        )


def ensure_private_dir(path: str, *, tighten: bool = False) -> str:
    """Create ``path`` and its missing parents ``0700``, or check an existing one
    (:func:`check_private_dir`; with ``tighten``, also make it ``0700``: serval's own
    directories, which an older serval created ``0755``). Returns ``path``."""
    path = os.path.abspath(path)
    parent = os.path.dirname(path)
    if parent != path and not os.path.isdir(parent):
        ensure_private_dir(parent)
    try:
        os.mkdir(path, 0o700)
        os.chmod(path, 0o700)  # whatever the umask
    except FileExistsError:
        check_private_dir(path)
        if tighten and stat.S_IMODE(os.stat(path).st_mode) != 0o700:
            os.chmod(path, 0o700)
    return path


def prepare_state_dir(home: str, state_dir: str) -> str:
    """Make the instance's directory (and ``logs/``) ready at start; refuse a home or a
    state directory that is not private. Returns ``state_dir``."""
    ensure_private_dir(home)
    ensure_private_dir(state_dir, tighten=True)
    ensure_private_dir(os.path.join(state_dir, "logs"), tighten=True)
    return state_dir
