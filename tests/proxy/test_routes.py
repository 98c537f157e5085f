from __future__ import annotations

from serval.proxy.routes import RouteTable
from serval.transport.messages import RouteInfo


def test_longest_prefix_wins_and_segments_matter() -> None:
    table = RouteTable(
        [
            RouteInfo("/", "root", "r"),
            RouteInfo("/api", "api", "a"),
            RouteInfo("/api/v2", "v2", "b"),
        ]
    )
    assert table.match("/api/v2/items").app == "v2"  # type: ignore[union-attr]
    assert table.match("/api/v2").app == "v2"  # type: ignore[union-attr]
    assert table.match("/api/v20").app == "api"  # type: ignore[union-attr]
    assert table.match("/apis").app == "root"  # type: ignore[union-attr]
    assert table.match("/").app == "root"  # type: ignore[union-attr]


def test_no_match_without_root() -> None:
    table = RouteTable([RouteInfo("/api", "api", "a")])
    assert table.match("/other") is None
    assert table.match("/ap") is None
    table.update([])
    assert table.match("/api") is None
