"""Settings for telling a scheduler that the job's own settings are wrong (exit 2).

A job whose configuration is refused still has outputs to say so on: its ``job.summary``
line, its ``--output json`` summary and its metrics, as far as the configuration names them
usably. These settings are the job's own with each refused value left out (back to its
default), one at a time, until the rest loads; they are used for those outputs only, never
for a request to the API. Missing credentials are stood in for by a placeholder, so the
metrics' ``target_id`` of such a job is not the tenant's (it has no identity to give).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from worker.config import BY_STATUS, BY_STATUS_ENV, Settings, read_config_file, settings_from
from worker.errors import ConfigError
from worker.keys import KEYS_BY_NAME

TRIES = 8  # refused values left out, at most, before giving up
PLACEHOLDER = "unknown (not set)"
CREDENTIALS = ("ZUORA_CLIENT_ID", "ZUORA_CLIENT_SECRET", "ZUORA_USERNAME", "ZUORA_PASSWORD")
ENTITY = "ZUORA_ENTITY_ID"
NETWORK_KEYS = {"target.proxy", "target.ca_file"}


def settings_despite(command: str, flags: Mapping[str, Any], env: Mapping[str, str],
                     config_path: str | None, error: ConfigError) -> Settings | None:
    """The settings with every refused value left out, or None when they still do not load
    (the target itself unknown, or more than ``TRIES`` values refused). When the way out to
    the network was refused (a proxy, a CA bundle), nothing is sent over it: the Pushgateway
    and the webhook are left out too (an egress policy may allow the proxy alone)."""
    left_out: list[str] = []
    settings = _despite(command, flags, env, config_path, error, left_out)
    if settings is None or not NETWORK_KEYS & set(left_out):
        return settings
    output = dataclasses.replace(settings.output, pushgateway=None, notify_webhook=None)
    return dataclasses.replace(settings, output=output)


def _despite(command: str, flags: Mapping[str, Any], env: Mapping[str, str],
             config_path: str | None, error: ConfigError, left_out: list[str]
             ) -> Settings | None:
    flags, env = dict(flags), dict(env)
    try:
        file_data = {k: (dict(v) if isinstance(v, dict) else v)
                     for k, v in read_config_file(config_path).items()}
    except ConfigError:
        file_data = {}
    for _ in range(TRIES):
        if not _leave_out(error.key, flags, env, file_data):
            return None
        left_out.append(error.key)
        try:
            return settings_from(command, flags, env, file_data)
        except ConfigError as exc:
            error = exc
    return None


def _leave_out(key: str, flags: dict[str, Any], env: dict[str, str],
               file_data: dict[str, Any]) -> bool:
    """Drop what ``key`` names from every source; False when nothing could be dropped."""
    name = key.split(".", 2)
    if key == "--config":  # the file itself: already left out
        return True
    name_of = key.removesuffix("_FILE")  # a credential read from a file (systemd, Kubernetes)
    if name_of in CREDENTIALS:
        env.pop(name_of + "_FILE", None)
        env[name_of] = PLACEHOLDER
        return True
    if name_of == ENTITY:
        return any(env.pop(k, None) is not None for k in (ENTITY, ENTITY + "_FILE"))
    if key in (BY_STATUS_ENV, BY_STATUS) or key.startswith(BY_STATUS + "."):
        flags.pop(BY_STATUS, None)
        env.pop(BY_STATUS_ENV, None)
        file_data.get("filters", {}).pop("older_than_by_status", None)
        return True
    if name[0] == "rules":
        return file_data.pop("rules", None) is not None
    if key in KEYS_BY_NAME and key not in ("target.base_url", "target.environment"):
        spec = KEYS_BY_NAME[key]
        dropped = [flags.pop(key, None), env.pop(spec.env, None),
                   file_data.get(spec.section, {}).pop(spec.field, None)]
        return any(value is not None for value in dropped)
    if len(name) == 1 and isinstance(file_data.get(key), dict):  # a file section refused
        return file_data.pop(key) is not None
    return False
