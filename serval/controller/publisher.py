"""Pushes the controller's published state to subscribers in other processes.

A key (``routes``, ``deployment:app/name``) holds a versioned value. A subscriber
gets the current value at once and every change after it; a subscriber whose
connection closed is dropped on the next publish.

Model placement changes often (every load and eviction on any replica) and its table
grows with the models held, so it travels as deltas: :meth:`Publisher.publish_models`
sends only what changed on one replica, and folds it into the stored target that a
new subscriber receives whole.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from serval.transport.connection import Connection
from serval.transport.messages import DeploymentTarget, ModelDelta, RouteInfo, Update

ROUTES = "routes"
_KINDS = ("routes", "target", "models")

_UNKNOWN = DeploymentTarget(replicas=[], max_queued_requests=-1, exists=False)


def fold(held: dict[str, None], added: list[str], removed: list[str]) -> None:
    """Apply a placement change in place. ``held`` is an insertion-ordered set (a dict
    of ``None``): the change costs what it holds, whatever the number of models (a
    list's ``remove`` scans: ~290 µs per change at 12,500 models a replica)."""
    for model_id in removed:
        held.pop(model_id, None)
    for model_id in added:
        held[model_id] = None


def deployment_key(app: str, deployment: str) -> str:
    return f"deployment:{app}/{deployment}"


@dataclass
class _Topic:
    update: Update
    subscribers: list[tuple[Connection, int]] = field(default_factory=list)
    # A deployment topic's placement: replica id -> the models it holds, with every
    # delta folded in; the stored target's model lists are rebuilt from it only when
    # someone needs the whole value (a new subscriber), not on every change.
    held: dict[str, dict[str, None]] = field(default_factory=dict)
    stale: bool = False  # the stored target's model lists lag ``held``


class Publisher:
    def __init__(self) -> None:
        self._topics: dict[str, _Topic] = {}
        # What went out, by kind (routes, target: whole values; models: placement
        # deltas): [updates, bytes], for metrics (serval_placement_*).
        self.sent: dict[str, list[int]] = {kind: [0, 0] for kind in _KINDS}

    def _topic(self, key: str) -> _Topic:
        topic = self._topics.get(key)
        if topic is None:
            initial = (
                Update(key, 0, routes=[]) if key == ROUTES else Update(key, 0, target=_UNKNOWN)
            )
            topic = self._topics[key] = _Topic(initial)
        return topic

    def subscribe(self, conn: Connection, stream_id: int, key: str) -> None:
        topic = self._whole(key)
        topic.subscribers.append((conn, stream_id))
        sent = self.sent["routes" if key == ROUTES else "target"]
        sent[1] += conn.send(stream_id, topic.update)
        sent[0] += 1

    def publish_routes(self, routes: list[RouteInfo]) -> None:
        topic = self._topic(ROUTES)
        if topic.update.routes == routes:
            return
        self._send(topic, Update(ROUTES, topic.update.version + 1, routes=routes), "routes")

    def publish_target(self, key: str, target: DeploymentTarget) -> None:
        topic = self._whole(key)
        if topic.update.target == target:
            return
        self._send(topic, Update(key, topic.update.version + 1, target=target), "target")
        topic.held = {r.replica_id: dict.fromkeys(r.model_ids) for r in target.replicas}

    def publish_models(self, key: str, delta: ModelDelta) -> bool:
        """Send one replica's placement change; False if that replica is not in the
        published target (its models go out with it when it is published)."""
        topic = self._topic(key)
        held = topic.held.get(delta.replica_id)
        if held is None:
            return False
        fold(held, delta.added, delta.removed)
        topic.stale = True
        version = topic.update.version + 1
        # Subscribers get the change; the topic keeps the whole, for later subscribers.
        self._send(
            topic,
            Update(key, version, models=delta),
            "models",
            stored=Update(key, version, target=topic.update.target),
        )
        return True

    def current(self, key: str) -> Update:
        return self._whole(key).update

    def _whole(self, key: str) -> _Topic:
        """The topic, its stored value brought up to date with the folded deltas."""
        topic = self._topic(key)
        target = topic.update.target
        if topic.stale and target is not None:
            for info in target.replicas:
                info.model_ids = list(topic.held.get(info.replica_id, ()))
            topic.stale = False
        return topic

    def _send(self, topic: _Topic, update: Update, kind: str, stored: Update | None = None) -> None:
        """Send ``update`` to the live subscribers; the topic's value becomes ``stored``
        (default: ``update`` itself)."""
        topic.update = stored if stored is not None else update
        alive = []
        sent = self.sent[kind]
        for conn, stream_id in topic.subscribers:
            if not conn.closed:
                sent[1] += conn.send(stream_id, update)
                sent[0] += 1
                alive.append((conn, stream_id))
        topic.subscribers = alive
