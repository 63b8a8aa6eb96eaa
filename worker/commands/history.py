"""``zuora-reaper history``: which reports get stuck, how often, and whether it is getting
worse, from the state store (``worker.state.history``). No request is sent.

It covers every target in the store unless target options narrow it: ``--base-url`` or
``--environment`` names the host, and the principal (``ZUORA_CLIENT_ID`` / ``ZUORA_USERNAME``)
and ``ZUORA_ENTITY_ID``, when set, narrow it further.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from worker.config import Settings
from worker.durations import format_duration, parse_duration
from worker.errors import ConfigError, Kind, StateUnavailable, WorkerError
from worker.logs import is_terminal
from worker.state.history import History, Scope, read_history
from worker.state.store import open_for

TOP = 10  # rows per ranking in the table (json and csv hold them all)
BAR = 40  # the widest bar of the weekly chart, in characters


def main(settings: Settings) -> Kind:
    """Print the history; the kind of the ending (the CLI maps it to an exit code)."""
    try:
        history = _read(settings)
    except WorkerError as exc:
        print(f"zuora-reaper history: {exc}", file=sys.stderr)
        return exc.kind
    output = settings.args.get("history_output") or "table"
    try:
        if output == "json":
            print(json.dumps(history.as_dict(), indent=2))
        elif output == "csv":
            write_csv(history, sys.stdout)
        else:
            render(history, sys.stdout, chart=is_terminal(sys.stdout))
        sys.stdout.flush()
    except BrokenPipeError:  # history | head: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return Kind.OK


def _read(settings: Settings) -> History:
    store = open_for(settings, os.environ, create=False)
    if store is None:
        raise StateUnavailable("history reads the state store, and --state is none (or its "
                               "default location is not writable)")
    try:
        return read_history(store, scope_of(settings))
    finally:
        store.close()


def scope_of(settings: Settings) -> Scope:
    """The jobs ``history`` covers: since ``--since``, of the target parts given."""
    text = settings.args.get("since") or "90d"
    try:
        since = parse_duration(text)
    except ValueError as exc:
        raise ConfigError("--since", str(exc)) from exc
    start = datetime.now(UTC).timestamp() - since
    if not settings.target.base_url:
        return Scope(start)
    ident, creds = settings.identity, settings.credentials
    named = creds.client_id if ident.auth == "oauth" else creds.username
    return Scope(start, ident.base_url, ident.principal if named else None, ident.entity_id)


def rows(history: History) -> list[tuple[str, str, Any]]:
    """(section, name, value): every number of the history, for csv and the table."""
    out: list[tuple[str, str, Any]] = [
        ("total", name, getattr(history, name))
        for name in ("jobs", "cancelled", "noticed", "spared", "failed")]
    out += [("total", "cancel_success_rate", history.cancel_success_rate)]
    out += [("age_at_cancel_s", k, v) for k, v in history.age_at_cancel_s.items()]
    out += [("jobs_by_mode", k, v) for k, v in history.jobs_by_mode.items()]
    for section in ("by_report_type", "by_owner", "by_report", "by_week"):
        out += [(section, k, v) for k, v in getattr(history, section).items()]
    out += [("repeat_offender", f"{o['report_id']} {o['report_name'] or ''}".strip(), o["jobs"])
            for o in history.repeat_offenders]
    return out


def write_csv(history: History, out: TextIO) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("section", "name", "value"))
    writer.writerows(rows(history))


def render(history: History, out: TextIO, *, chart: bool) -> None:
    """The readable answer: totals, the rankings (top ``TOP``), repeat offenders, weeks."""
    since = datetime.fromtimestamp(history.since, UTC).strftime("%Y-%m-%d %H:%M UTC")
    rate = history.cancel_success_rate
    ages = history.age_at_cancel_s
    out.write(f"since {since}: {history.jobs} job(s) on {len(history.targets)} target(s)\n")
    out.write(f"runs cancelled {history.cancelled}, noticed {history.noticed}, spared "
              f"{history.spared}, failed {history.failed}; cancel success rate "
              f"{'-' if rate is None else f'{rate:.1%}'}\n")
    if ages.get("median") is not None:
        out.write(f"age at cancel: median {format_duration(ages['median'] or 0)}, p95 "
                  f"{format_duration(ages['p95'] or 0)}\n")
    for title, ranking in (("by report type", history.by_report_type),
                           ("by owner", history.by_owner), ("by report", history.by_report)):
        _ranking(out, title, ranking)
    if history.repeat_offenders:
        out.write("\nrepeat offenders (stuck in 3 or more jobs)\n")
        for o in history.repeat_offenders[:TOP]:
            out.write(f"  {o['jobs']:>5} jobs  {o['runs']:>5} runs  {o['report_id']} "
                      f"{o['report_name'] or ''}\n")
    _weeks(out, history.by_week, chart)


def _ranking(out: TextIO, title: str, ranking: dict[str, int]) -> None:
    if not ranking:
        return
    out.write(f"\ncancelled {title}\n")
    for name, count in list(ranking.items())[:TOP]:
        out.write(f"  {count:>7}  {name}\n")
    if len(ranking) > TOP:
        out.write(f"  {sum(list(ranking.values())[TOP:]):>7}  ({len(ranking) - TOP} more)\n")


def _weeks(out: TextIO, weeks: dict[str, int], chart: bool) -> None:
    if not weeks:
        return
    out.write("\ncancelled by ISO week\n")
    top = max(weeks.values())
    for week, count in weeks.items():
        bar = " " + "#" * max(1, round(BAR * count / top)) if chart and count else ""
        out.write(f"  {week}  {count:>7}{bar}\n")
