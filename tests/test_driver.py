"""How drivers find, start and join this machine's instance (``serval/_driver.py``)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import psutil

import serval
from serval import _driver
from tests.utils import free_port

STARTER = textwrap.dedent(
    """
    import sys
    import serval
    from serval import _driver
    serval.start(detached=True, http_options={"port": int(sys.argv[1])})
    print(_driver.connect()["pid"], flush=True)
    """
)


def _supervisors(home: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or ())
        if "serval.controller.supervisor" in cmdline and home in cmdline:
            found.append(proc)
    return found


def test_drivers_starting_at_once_share_one_instance(serval_home: str) -> None:
    port = free_port()
    drivers = [
        subprocess.Popen(
            [sys.executable, "-c", STARTER, str(port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outcomes = [d.communicate(timeout=120) for d in drivers]
    for d, (_, err) in zip(drivers, outcomes, strict=True):
        assert d.returncode == 0, err
    pids = {out.strip() for out, _ in outcomes}
    assert len(pids) == 1, outcomes  # one controller answered every driver...
    assert len(_supervisors(serval_home)) == 1  # ...under one supervisor
    serval.start()  # this process joins it too (the secret on disk is the instance's)
    assert str(_driver.connect()["pid"]) in pids
    assert os.stat(os.path.join(_driver.state_dir(), "start.lock")).st_mode & 0o077 == 0
