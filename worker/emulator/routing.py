"""Map a method and path to the operation the emulator serves."""

from __future__ import annotations

from dataclasses import dataclass

TOKEN_PATH = "/oauth/token"  # noqa: S105 - a path, not a secret
OAUTH_PREFIX = "/reporting/api/rest/v1"
LEGACY_PREFIX = "/api/rest/v1"
METHOD_KINDS = {"GET": "get", "DELETE": "delete"}


@dataclass(frozen=True)
class Route:
    kind: str  # token, list, get, delete, other
    legacy: bool = False
    run_id: str | None = None
    status: int = 404  # for kind "other": 404 unknown path, 405 wrong method


def _api_tail(path: str) -> tuple[bool, str] | None:
    for prefix, legacy in ((OAUTH_PREFIX, False), (LEGACY_PREFIX, True)):
        if path.startswith(prefix + "/"):
            return legacy, path[len(prefix) :].rstrip("/")
    return None


def classify(method: str, path: str) -> Route:
    if path.rstrip("/") == TOKEN_PATH:
        return Route("token") if method == "POST" else Route("other", status=405)
    api = _api_tail(path)
    if api is None:
        return Route("other")
    legacy, tail = api
    if tail == "/reportruns":
        return Route("list", legacy) if method == "POST" else Route("other", legacy, None, 405)
    parts = tail.split("/")
    if len(parts) == 3 and parts[1] == "reportruns" and parts[2]:
        kind = METHOD_KINDS.get(method)
        if kind is None:
            return Route("other", legacy, parts[2], 405)
        return Route(kind, legacy, parts[2])
    return Route("other", legacy)
