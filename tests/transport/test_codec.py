"""Exceptions in and out of error replies."""

from __future__ import annotations

from serval.exceptions import ReplicaError
from serval.transport.codec import error_from_reply, error_reply


def _raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:
        return caught


def test_user_error_keeps_type_message_and_traceback() -> None:
    got = error_from_reply(error_reply(_raised(ZeroDivisionError("the model's bug"))))
    assert isinstance(got, ReplicaError)
    assert (got.cause_type, got.message) == ("ZeroDivisionError", "the model's bug")
    assert "Traceback" in got.remote_traceback and "ZeroDivisionError" in got.remote_traceback


def test_a_passed_on_replica_error_shows_its_cause_not_its_traceback() -> None:
    """A deployment that lets a handle call's failure through (an ingress calling the
    model's deployment): its caller sees the cause; the tracebacks stay in the logs."""
    inner = error_from_reply(error_reply(_raised(ZeroDivisionError("the model's bug"))))
    got = error_from_reply(error_reply(_raised(inner)))
    assert isinstance(got, ReplicaError)
    assert (got.cause_type, got.message) == ("ZeroDivisionError", "the model's bug")
    assert "Remote traceback" in got.remote_traceback  # the inner one, for the logs
