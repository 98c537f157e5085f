"""State directories are private: created 0700, refused when someone else could meddle."""

from __future__ import annotations

import os
import pwd
import stat

import pytest

import serval
from serval import _driver, _env, _statedir
from serval.exceptions import ConfigError
from tests.utils import short_tmpdir


def _mode(path: str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_created_0700_with_missing_parents() -> None:
    with short_tmpdir() as d:
        home = os.path.join(d, "a", "home")
        sdir = _statedir.prepare_state_dir(home, os.path.join(home, "ns"))
        for path in (os.path.join(d, "a"), home, sdir, os.path.join(sdir, "logs")):
            assert _mode(path) == 0o700, path


def test_an_older_0755_state_dir_of_ours_is_tightened_but_a_home_is_not_touched() -> None:
    with short_tmpdir() as d:
        os.chmod(d, 0o755)
        sdir = os.path.join(d, "ns")
        os.mkdir(sdir, 0o755)
        os.chmod(sdir, 0o755)
        _statedir.prepare_state_dir(d, sdir)
        assert _mode(sdir) == 0o700
        assert _mode(d) == 0o755  # the user's own home: readable by others is their choice


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o1777])
def test_a_dir_others_can_write_to_is_refused(mode: int) -> None:
    with short_tmpdir() as d:
        os.chmod(d, mode)
        with pytest.raises(ConfigError, match=f"refusing the serval state directory {d}.*writable"):
            _statedir.prepare_state_dir(d, os.path.join(d, "ns"))
        assert not os.path.exists(os.path.join(d, "ns"))


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a directory to another user")
def test_a_dir_owned_by_another_user_is_refused_naming_the_owner() -> None:
    nobody = pwd.getpwnam("nobody")
    with short_tmpdir() as d:
        sdir = os.path.join(d, "ns")
        os.mkdir(sdir, 0o700)
        os.chown(sdir, nobody.pw_uid, nobody.pw_gid)
        with pytest.raises(ConfigError) as err:
            _statedir.prepare_state_dir(d, sdir)
        message = str(err.value)
        assert sdir in message and f"nobody (uid {nobody.pw_uid})" in message


def test_xdg_runtime_dir_is_preferred_unless_serval_home_is_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SERVAL_HOME", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/4242")
    assert _env.read_env().home == "/run/user/4242/serval"
    monkeypatch.setenv("SERVAL_HOME", "/srv/serval")
    assert _env.read_env().home == "/srv/serval"
    monkeypatch.delenv("SERVAL_HOME")
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert _env.read_env().home == f"/tmp/serval-{os.getuid()}"


# -- on real instances -------------------------------------------------------------------


def test_an_instance_lives_in_xdg_runtime_dir(
    serval_home: str, http_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SERVAL_HOME")
    monkeypatch.setenv("XDG_RUNTIME_DIR", serval_home)
    serval.start(http_options={"port": http_port})
    sdir = os.path.join(serval_home, "serval", "t")
    assert _driver.state_dir() == sdir
    assert stat.S_ISSOCK(os.stat(os.path.join(sdir, "controller.sock")).st_mode)
    for path in (os.path.join(serval_home, "serval"), sdir, os.path.join(sdir, "logs")):
        assert _mode(path) == 0o700, path
    assert _mode(os.path.join(sdir, "controller.sock")) == 0o600
    assert _mode(os.path.join(sdir, "secret")) == 0o600


def test_start_refuses_a_world_writable_state_dir(serval_home: str, http_port: int) -> None:
    sdir = os.path.join(serval_home, "t")
    os.mkdir(sdir)
    os.chmod(sdir, 0o777)
    with pytest.raises(ConfigError, match=f"{sdir}: it is writable by group and others"):
        serval.start(http_options={"port": http_port})
    assert os.listdir(sdir) == []  # nothing created, nothing started


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a directory to another user")
def test_start_refuses_a_state_dir_owned_by_another_user(serval_home: str, http_port: int) -> None:
    nobody = pwd.getpwnam("nobody")
    os.chown(serval_home, nobody.pw_uid, nobody.pw_gid)
    try:
        with pytest.raises(ConfigError, match=f"{serval_home}: it is owned by nobody"):
            serval.start(http_options={"port": http_port})
    finally:
        os.chown(serval_home, 0, 0)


def test_connecting_refuses_a_state_dir_opened_to_others(serve: str, serval_home: str) -> None:
    sdir = os.path.join(serval_home, "t")
    os.chmod(sdir, 0o777)
    try:
        with pytest.raises(ConfigError, match=f"{sdir}: it is writable"):
            _driver.connect()
    finally:
        os.chmod(sdir, 0o700)
    _driver.connect()
