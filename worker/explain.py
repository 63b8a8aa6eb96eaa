"""``zuora-reaper explain``: every key, its effective value and where it came from."""

from __future__ import annotations

from typing import Any

from worker.config import BY_STATUS, Settings
from worker.durations import format_duration
from worker.keys import KEYS


def _show(kind: str, value: Any) -> str:
    if value is None:
        return "-"
    if kind == "duration":
        return format_duration(float(value))
    if isinstance(value, tuple):
        return ", ".join(value) if value else "(any)"
    return str(value)


def render_explain(settings: Settings) -> str:
    """A table of key, value, source (flag/env/file/default) and the flag/env names; no secrets."""
    rows = [("KEY", "VALUE", "SOURCE", "FLAG", "ENV")]
    for key in KEYS:
        rows.append((key.name, _show(key.kind, settings.values.get(key.name)),
                     settings.sources.get(key.name, "default"), key.cli_flag or "-", key.env))
    by_status = settings.values.get(BY_STATUS) or ()
    rows.append((BY_STATUS, ", ".join(f"{s}={format_duration(d)}" for s, d in by_status) or "-",
                 settings.sources.get(BY_STATUS, "default"), "--older-than STATUS=DUR", "-"))
    rows.append(("rules", ", ".join(r.name for r in settings.selection.rules) or "-",
                 "file" if settings.selection.rules else "default", "-", "-"))
    creds = settings.credentials
    rows.append(("credentials", repr(creds), "env", "-",
                 "ZUORA_CLIENT_ID/SECRET or ZUORA_USERNAME/PASSWORD"))
    rows.append(("target.api_root", settings.target.api_root, "derived", "-", "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip()
                     for r in rows)
