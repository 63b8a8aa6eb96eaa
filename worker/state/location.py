"""Where the state store is: ``--state`` (a SQLite path, ``sqlite:///PATH`` or a PostgreSQL
URL), ``none``, or the default SQLite file in the user's state directory.

The default follows the platform's conventions: systemd's ``StateDirectory=`` (it exports
``$STATE_DIRECTORY``), then ``$XDG_STATE_HOME/zuora-reaper``, then
``~/.local/state/zuora-reaper``. The URL's password is a secret: it is never shown
(:func:`Location.shown`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from worker.errors import ConfigError

KEY = "state.url"
DEFAULT_NAME = "state.db"
PG_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")
ALLOWED = ("a SQLite file path", "sqlite:///PATH", "postgresql://USER:PASSWORD@HOST[:PORT]/DB",
           "none")


@dataclass(frozen=True, slots=True)
class Location:
    """A resolved state location: the SQLAlchemy URL, and whether a person named it."""

    url: str = field(repr=False)  # may hold a password
    kind: str  # "sqlite" | "postgresql"
    explicit: bool
    path: str | None = None  # the SQLite file

    def shown(self) -> str:
        """The location as messages show it: a path, or the URL without its password (and
        without its query, where a password may be too)."""
        if self.path is not None:
            return self.path
        parts = urlsplit(self.url)
        netloc = parts.netloc.rpartition("@")[2]
        user = f"{parts.username}@" if parts.username else ""
        return f"postgresql://{user}{netloc}{parts.path}"

    def password(self) -> str | None:
        """The URL's password (a secret the logs scrub), if any: in the user info or as a
        ``password=`` query parameter (libpq takes both)."""
        if self.kind != "postgresql":
            return None
        parts = urlsplit(self.url)
        query = parse_qs(parts.query).get("password")
        return parts.password or (query[0] if query else None)


def default_dir(env: Mapping[str, str]) -> str:
    """The directory of the default state file."""
    systemd = env.get("STATE_DIRECTORY", "").split(":")[0]
    if systemd:
        return systemd
    xdg = env.get("XDG_STATE_HOME", "")
    base = xdg if os.path.isabs(xdg) else os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "zuora-reaper")


def resolve(value: str | None, env: Mapping[str, str]) -> Location | None:
    """The location ``value`` names (None: the default; ``none``: no state at all)."""
    if value is None or not value.strip():
        path = os.path.join(default_dir(env), DEFAULT_NAME)
        return Location(f"sqlite:///{path}", "sqlite", explicit=False, path=path)
    text = value.strip()
    if text.lower() == "none":
        return None
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme in PG_SCHEMES:
        rest = text.split("://", 1)[1]
        try:
            parts = urlsplit(text)
            parts.port  # noqa: B018 - raises ValueError for a port that is no port
        except ValueError as exc:
            raise ConfigError(KEY, f"not a PostgreSQL URL ({exc}); write "
                                   "postgresql://USER@HOST[:PORT]/DB") from exc
        if not parts.hostname and "host=" not in (parts.query or ""):
            raise ConfigError(KEY, "a PostgreSQL URL needs a host, e.g. "
                                   "postgresql://reaper@db.example.com/reaper")
        return Location(f"postgresql+psycopg://{rest}", "postgresql", explicit=True)
    if scheme == "sqlite":  # SQLAlchemy's form: sqlite:///relative, sqlite:////absolute
        path = text[len("sqlite:///"):] if text.lower().startswith("sqlite:///") else ""
        if not path or path.startswith(":memory:"):
            raise ConfigError(KEY, "sqlite:/// takes a file path, e.g. "
                                   "sqlite:////var/lib/zuora-reaper/state.db (or give the path)")
    elif scheme:
        raise ConfigError(KEY, f"{scheme}:// is not a state store; allowed: "
                               f"{', '.join(ALLOWED)}")
    else:
        path = text
    path = os.path.abspath(os.path.expanduser(path))
    return Location(f"sqlite:///{path}", "sqlite", explicit=True, path=path)


def state_secrets(value: str | None) -> list[str]:
    """The secret of a ``--state`` value: a PostgreSQL URL's password."""
    if not value or "://" not in value:
        return []
    parts = urlsplit(value.strip())
    query = parse_qs(parts.query).get("password")
    return [p for p in (parts.password, query[0] if query else None) if p]
