"""The controller's publisher: versioned topics, and placement sent as deltas."""

from __future__ import annotations

import msgspec

from serval.controller.publisher import Publisher
from serval.transport.messages import DeploymentTarget, Message, ModelDelta, ReplicaInfo, Update


class Sink:
    """Stands in for a subscriber's connection: keeps what it was sent."""

    closed = False

    def __init__(self) -> None:
        self.sent: list[Update] = []

    def send(self, stream_id: int, msg: Message) -> int:
        assert isinstance(msg, Update)
        self.sent.append(msg)
        return 10  # bytes, as a connection would say


def _target(models_of_a: list[str]) -> DeploymentTarget:
    return DeploymentTarget(
        [ReplicaInfo("a", "addr-a", 5, list(models_of_a)), ReplicaInfo("b", "addr-b", 5, [])], -1
    )


def test_a_placement_change_goes_out_as_a_delta_and_new_subscribers_get_it_whole() -> None:
    pub = Publisher()
    first = Sink()
    pub.subscribe(first, 1, "deployment:x/d")  # type: ignore[arg-type]
    many = [f"tenant{i}" for i in range(10_000)]
    pub.publish_target("deployment:x/d", _target(many))
    assert pub.publish_models("deployment:x/d", ModelDelta("a", ["new"], ["tenant3"]))
    delta = first.sent[-1]
    assert delta.target is None and delta.models == ModelDelta("a", ["new"], ["tenant3"])
    full_size = len(msgspec.msgpack.encode(first.sent[-2]))
    assert len(msgspec.msgpack.encode(delta)) * 1000 < full_size  # bytes grow with the change

    late = Sink()
    pub.subscribe(late, 1, "deployment:x/d")  # type: ignore[arg-type]
    (whole,) = late.sent
    assert whole.version == delta.version
    assert whole.target is not None
    held = whole.target.replicas[0].model_ids
    assert "new" in held and "tenant3" not in held and len(held) == 10_000
    # A full publish of the same state sends nothing: the folded state matches it.
    n = len(first.sent)
    pub.publish_target("deployment:x/d", _target([m for m in many if m != "tenant3"] + ["new"]))
    assert len(first.sent) == n


def test_a_delta_for_an_unpublished_replica_is_refused() -> None:
    pub = Publisher()
    pub.publish_target("deployment:x/d", _target([]))
    assert not pub.publish_models("deployment:x/d", ModelDelta("zzz", ["m"], []))


def test_what_goes_out_is_counted_by_kind() -> None:
    pub = Publisher()
    sinks = [Sink(), Sink()]
    for sink in sinks:
        pub.subscribe(sink, 1, "deployment:x/d")  # type: ignore[arg-type]
    pub.publish_target("deployment:x/d", _target(["m1"]))
    pub.publish_models("deployment:x/d", ModelDelta("a", ["m2"], []))
    pub.publish_models("deployment:x/d", ModelDelta("a", [], ["m1"]))
    # Sink.send says 10 bytes per update; two subscribers get each.
    assert pub.sent["target"] == [4, 40]  # two initial values, one publish to both
    assert pub.sent["models"] == [4, 40] and pub.sent["routes"] == [0, 0]
