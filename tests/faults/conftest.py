"""The fault suite's report: each test records requests sent, failed and lost, and
how long the system took to recover; the session ends with one table of them all
(``make faults`` runs the suite alone: ``pytest -m faults``)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.faults._traffic import Traffic

_RECORDS = pytest.StashKey[list["FaultRecord"]]()
_OUTCOME = pytest.StashKey[str]()


@dataclass
class FaultRecord:
    """One test's figures (see the ``fault_report`` fixture)."""

    test: str
    fault: str = ""
    sent: int = 0
    failed: int = 0
    lost: int = 0
    recovery_s: float | None = None
    outcome: str = "?"
    _fault_at: float | None = None
    _traffic: list[Traffic] = field(default_factory=list)

    def add(self, traffic: Traffic) -> None:
        """Count ``traffic``'s requests into the figures (when the test ends, passed
        or not)."""
        self._traffic.append(traffic)

    def _count(self) -> None:
        for traffic in self._traffic:
            self.sent += traffic.sent
            self.failed += len(traffic.failed)
            self.lost += len(traffic.lost)

    def inject(self, fault: str) -> float:
        """Say which fault the test injects, now; returns the time it happened."""
        self.fault = fault
        self._fault_at = time.monotonic()
        return self._fault_at

    def recovered(self) -> float:
        """The system is back to normal now: record the time since ``inject``."""
        assert self._fault_at is not None, "inject() the fault first"
        self.recovery_s = time.monotonic() - self._fault_at
        return self.recovery_s


@pytest.fixture
def fault_report(request: pytest.FixtureRequest) -> Iterator[FaultRecord]:
    record = FaultRecord(test=request.node.name.removeprefix("test_"))
    yield record
    record._count()
    record.outcome = request.node.stash.get(_OUTCOME, "?")
    request.config.stash.setdefault(_RECORDS, []).append(record)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    if report.when == "call" or report.failed:
        item.stash[_OUTCOME] = report.outcome
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    records = terminalreporter.config.stash.get(_RECORDS, [])
    if not records:
        return
    terminalreporter.section("fault suite")
    rows = [("test", "fault", "sent", "failed", "lost", "recovery", "result")]
    for r in records:
        recovery = "-" if r.recovery_s is None else f"{r.recovery_s:.2f}s"
        rows.append((r.test, r.fault, str(r.sent), str(r.failed), str(r.lost), recovery, r.outcome))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for n, row in enumerate(rows):
        cells = [
            cell.rjust(w) if 2 <= i <= 5 else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        terminalreporter.write_line("  ".join(cells).rstrip())
        if n == 0:
            terminalreporter.write_line("  ".join("-" * w for w in widths))
