"""Which application serves a path: the longest matching ``route_prefix``."""

from __future__ import annotations

from serval.transport.messages import RouteInfo


class RouteTable:
    """``match('/api/v1/x')`` → the route with the longest prefix that covers the path.

    A prefix covers a path when they are equal or the path continues with ``/``
    after it; ``/`` covers everything.
    """

    def __init__(self, routes: list[RouteInfo] | None = None) -> None:
        self._routes: list[RouteInfo] = []
        self.update(routes or [])

    def update(self, routes: list[RouteInfo]) -> None:
        self._routes = sorted(routes, key=lambda r: len(r.prefix), reverse=True)

    def match(self, path: str) -> RouteInfo | None:
        for route in self._routes:
            prefix = route.prefix
            if (
                prefix == "/"
                or path == prefix
                or (path.startswith(prefix) and path[len(prefix)] == "/")
            ):
                return route
        return None

    def for_app(self, app: str) -> RouteInfo | None:
        """The route of application ``app`` (None: it has no HTTP route)."""
        return next((r for r in self._routes if r.app == app), None)

    @property
    def routes(self) -> list[RouteInfo]:
        return list(self._routes)
