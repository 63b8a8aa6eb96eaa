"""Credentials, read only from the environment (or a file the environment names).

They never enter the config file, the report, a log line or a ``repr()``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from worker.errors import ConfigError
from worker.files import SECRET_CAP, read_capped

_NAMES = ("ZUORA_CLIENT_ID", "ZUORA_CLIENT_SECRET", "ZUORA_USERNAME", "ZUORA_PASSWORD")


@dataclass(frozen=True, slots=True)
class Credentials:
    """API credentials. ``repr`` shows which are set, never their values."""

    client_id: str | None = field(default=None, repr=False)
    client_secret: str | None = field(default=None, repr=False)
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    entity_id: str | None = None

    def __repr__(self) -> str:
        shown = {
            "client_id": self.client_id, "client_secret": self.client_secret,
            "username": self.username, "password": self.password,
        }
        flags = ", ".join(f"{k}={'set' if v else 'unset'}" for k, v in shown.items())
        return f"Credentials({flags}, entity_id={self.entity_id!r})"

    __str__ = __repr__

    def secrets(self) -> list[str]:
        """The secret values, for redaction filters."""
        return [v for v in (self.client_secret, self.password, self.client_id) if v]


def env_secrets(env: Mapping[str, str]) -> list[str]:
    """The secret values set directly in the environment (for errors raised before the
    settings exist: a config error must not echo one either)."""
    return [v.strip() for k, v in env.items() if k in SECRET_ENV and v.strip()]


SECRET_ENV = ("ZUORA_CLIENT_SECRET", "ZUORA_PASSWORD", "ZUORA_CLIENT_ID")


def _read(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    file_name = env.get(name + "_FILE")
    if not (value or "").strip() and file_name:  # an empty NAME= does not hide NAME_FILE
        value = read_capped(name + "_FILE", file_name, SECRET_CAP, "secret file").strip()
    value = value.strip() if value and value.strip() else None
    if value is not None and any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ConfigError(name, "holds a control character (a line break inside it?); it is "
                                "sent in a header or form field and must be one line of text")
    return value


def load_credentials(env: Mapping[str, str], auth: str, need: int = 2) -> Credentials:
    """Read credentials for ``auth`` ("oauth" or "legacy"); raise ConfigError if one of the
    first ``need`` (the principal, then its secret) is missing."""
    values = {name: _read(env, name) for name in _NAMES}
    creds = Credentials(
        client_id=values["ZUORA_CLIENT_ID"], client_secret=values["ZUORA_CLIENT_SECRET"],
        username=values["ZUORA_USERNAME"], password=values["ZUORA_PASSWORD"],
        entity_id=_read(env, "ZUORA_ENTITY_ID"),
    )
    needed = (("ZUORA_CLIENT_ID", creds.client_id), ("ZUORA_CLIENT_SECRET", creds.client_secret))
    if auth == "legacy":
        needed = (("ZUORA_USERNAME", creds.username), ("ZUORA_PASSWORD", creds.password))
    missing = [name for name, value in needed[:need] if not value]
    if missing:
        raise ConfigError(missing[0], f"required for --auth {auth}: set {' and '.join(missing)} "
                                      f"(or {missing[0]}_FILE naming a file that holds it)")
    return creds
