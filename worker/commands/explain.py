"""``zuora-reaper explain``: every key, its effective value and where it came from.

Sources are ``flag``, ``env``, ``file`` and ``default`` (and ``derived`` for values computed
from others). Nothing secret is printed: credentials show only whether they are set, URLs that
may carry a token (webhook, Pushgateway) show only scheme and host, and the credential values
are scrubbed from the whole text as a last resort.
"""

from __future__ import annotations

import textwrap
from typing import Any

from worker.config import BY_STATUS, BY_STATUS_ENV, Filters, Rule, Settings
from worker.durations import format_duration
from worker.keys import KEYS
from worker.logs import Redactor, hide_url
from worker.models import IN_PROGRESS
from worker.pacer import PacerConfig, cancels_with, plan_for
from worker.ratelimit import TENANTS
from worker.selection import threshold
from worker.state.location import resolve

# Keys whose value is a URL that may hold a secret in its user info, path or query.
SECRET_URL_KEYS = frozenset({"output.notify_webhook", "output.pushgateway"})
NOTE = ("Notes: a run's age threshold is the larger of filters.older_than and its status's "
        "filters.older_than_by_status entry (effective.older_than.* above); exclusions always "
        "win over every filter and rule; no run younger than safety.min_age is cancelled "
        "unless safety.allow_young.")


def _show(name: str, kind: str, value: Any) -> str:
    if value is None:
        return "-"
    if name in SECRET_URL_KEYS:
        return hide_url(str(value), show="marked")
    if name == "target.proxy":
        return hide_url(str(value), show="all_but_user")
    if name == "state.url" and "://" in str(value):
        where = resolve(str(value), {})  # a PostgreSQL URL without its password (or query)
        return where.shown() if where is not None else "none"
    if kind == "duration":
        return format_duration(float(value))
    if isinstance(value, tuple):
        return ", ".join(value) if value else "(any)"
    return str(value)


def _by_status(pairs: tuple[tuple[str, float], ...]) -> str:
    return ", ".join(f"{s}={format_duration(d)}" for s, d in pairs) or "-"


def _describe(filters: Filters) -> str:
    """A compact one-line description of a rule's filters (only what it sets)."""
    parts = [f"statuses={'/'.join(filters.statuses)}"]
    if filters.older_than is not None:
        parts.append(f"older_than={format_duration(filters.older_than)}")
    if filters.older_than_by_status:
        parts.append(f"by_status=[{_by_status(filters.older_than_by_status)}]")
    if filters.idle_for is not None:
        parts.append(f"idle_for={format_duration(filters.idle_for)}")
    for label, items in (("report_types", filters.report_types),
                         ("created_by", filters.created_by), ("report_ids", filters.report_ids)):
        if items:
            parts.append(f"{label}={'/'.join(items)}")
    return " ".join(parts)


def _rows(settings: Settings) -> list[tuple[str, str, str, str, str]]:
    rows = [(key.name, _show(key.name, key.kind, settings.values.get(key.name)),
             settings.sources.get(key.name, "default"), key.cli_flag or "-", key.env)
            for key in KEYS]
    rows.append((BY_STATUS, _by_status(settings.selection.filters.older_than_by_status),
                 settings.sources.get(BY_STATUS, "default"), "--older-than STATUS=DUR",
                 BY_STATUS_ENV))
    filters = settings.selection.filters
    rows += [(f"effective.older_than.{status}", format_duration(threshold(filters, status)),
              "derived", "-", "-") for status in IN_PROGRESS]
    rows += _rule_rows(settings.selection.rules)
    rows.append(("credentials", repr(settings.credentials), "env", "-",
                 "ZUORA_CLIENT_ID/SECRET or ZUORA_USERNAME/PASSWORD"))
    rows.append(("target.api_root", settings.target.api_root, "derived", "-", "-"))
    rows.append(("network.proxy", settings.network.describe(), "derived", "-",
                 "HTTPS_PROXY/HTTP_PROXY/NO_PROXY"))
    rows.append(("network.trust", settings.network.describe_trust(), "derived", "-",
                 "SSL_CERT_FILE"))
    return rows + _quota_rows(settings)


def _quota_rows(settings: Settings) -> list[tuple[str, str, str, str, str]]:
    """What a job would do with each tenant type's documented quota windows (the real ones are
    read from the answers: ``check`` shows them): the pace, and each longer window's budget."""
    pacing = settings.pacing
    config = PacerConfig(rate=pacing.rate, concurrency=pacing.concurrency,
                         quota_share=pacing.quota_share)
    rows = []
    for tenant, windows in TENANTS.items():
        rate, budgets = plan_for(config, windows)
        for w in windows:
            what = (f"paced at {rate:.3g}/s" if w not in budgets else
                    f"{budgets[w]:,} a job (~"
                    f"{cancels_with(budgets[w], settings.listing.page_size):,} cancels)")
            rows.append((f"quota.{tenant}.{w.seconds:g}s", f"{w.quota:,}: {what}", "derived",
                         "-", "-"))
    return rows


def _rule_rows(rules: tuple[Rule, ...]) -> list[tuple[str, str, str, str, str]]:
    if not rules:
        return [("rules", "- (no [[rules]]: the filters alone decide)", "default", "-", "-")]
    return [(f"rules.{rule.name}", _describe(rule.filters), "file", "-", "-") for rule in rules]


WIDTH = 100  # the table fits a 100-column terminal: long values wrap inside their column
GAP = "  "


def _cells(value: str, width: int) -> list[str]:
    """``value`` cut into lines of at most ``width`` characters (so they join back exactly)."""
    return [value[i:i + width] for i in range(0, len(value), width)] or [""]


def _table(rows: list[tuple[str, str, str, str, str]]) -> str:
    """KEY, VALUE, SOURCE within ``WIDTH`` columns; under each value, how to set it (flag and
    environment variable). A long value wraps inside its column."""
    key_w = max(len(r[0]) for r in rows)
    source_w = max(len(r[2]) for r in rows)
    value_w = WIDTH - key_w - source_w - 2 * len(GAP)
    lines = []
    for index, (key, value, source, flag, env) in enumerate(rows):
        values = _cells(value, value_w)
        for i, cell in enumerate(values):
            parts = [(key if i == 0 else "").ljust(key_w), cell.ljust(value_w),
                     source if i == 0 else ""]
            lines.append(GAP.join(parts).rstrip())
        how = ", ".join(x for x in (flag, env) if x and x != "-")
        if index and how:
            lines += [" " * (key_w + len(GAP)) + cell
                      for cell in textwrap.wrap(f"set with {how}", value_w,
                                                break_on_hyphens=False)]
    return "\n".join(lines)


def render_explain(settings: Settings) -> str:
    """A table of key, value, source (flag/env/file/default) and the flag/env names, within
    100 columns; no secrets."""
    table = _table([("KEY", "VALUE", "SOURCE", "", ""), *_rows(settings)])
    secrets = [*settings.credentials.secrets(), *settings.network.secrets()]
    return Redactor(secrets).scrub(f"{table}\n\n{textwrap.fill(NOTE, WIDTH)}")
