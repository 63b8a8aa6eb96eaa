"""The job's report: the JSON document (schema_version 1) and its counts, its atomic write,
and the human output on stdout (the table of selected runs and the one-line summary)."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any

import orjson

from worker.config import Settings
from worker.errors import InternalError, Kind
from worker.files import write_atomic
from worker.models import UNSUCCESSFUL, JobResult, Outcome, RunRecord

SCHEMA_VERSION = 1
TOP_GROUPS = 10  # values listed per group of the selection summary, the rest as 'other'


def iso(value: datetime | None) -> str | None:
    """ISO-8601 UTC with a Z, milliseconds precision."""
    if value is None:
        return None
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def counts(result: JobResult) -> dict[str, int]:
    """``listed``, ``selected``, ``unparseable`` and one key per outcome (zeros included)."""
    outcomes = Counter(r.outcome for r in result.records.values() if r.outcome is not None)
    out = {
        "listed": len(result.records),
        "selected": sum(1 for r in result.records.values() if r.selected),
        "unparseable": sum(1 for r in result.records.values() if r.reason == "unparseable"),
    }
    out.update({o.value: outcomes.get(o, 0) for o in Outcome})
    return out


def verdict(result: JobResult) -> tuple[Kind, str | None]:
    """How the job ended, and the one-line reason (None when all is well)."""
    if isinstance(result.error, InternalError):
        return result.error.kind, str(result.error)
    if result.error is not None:
        return result.error.kind, f"{type(result.error).__name__}: {result.error}"
    c = counts(result)
    if result.stop_reason and result.stop_kind is not None:
        return result.stop_kind, (f"stopped: {result.stop_reason}; {c['not_attempted']} "
                                  "selected runs not attempted, left for the next job")
    failed = sum(c[o.value] for o in UNSUCCESSFUL)
    if not failed and c[Outcome.NOT_ATTEMPTED.value]:  # left alone with no stop: never "all well"
        return Kind.FAILED, (f"{c[Outcome.NOT_ATTEMPTED.value]} selected run(s) were not "
                             "attempted; see the log for why")
    if not failed and result.memory_error:
        return Kind.FAILED, result.memory_error
    if failed:
        unsure = c[Outcome.STILL_RUNNING.value] + c[Outcome.UNKNOWN.value]
        detail = f" ({unsure} of them still running or unknown)" if unsure else ""
        return Kind.FAILED, (f"{failed} selected run(s) failed to cancel{detail}; see the "
                             "report for each error")
    return Kind.OK, None


def selection_doc(result: JobResult, now: datetime) -> dict[str, Any]:
    """What was selected, in counts: by status, report type, owner and rule (the largest
    first, at most ``TOP_GROUPS`` each, the rest as ``other``), and the oldest and newest."""
    selected = [r for r in result.records.values() if r.selected]
    ages = [age for age in (r.age_s(now) for r in selected) if age is not None]
    return {
        "selected": len(selected),
        "listed": len(result.records),
        "by_status": _top(r.run.status for r in selected),
        "by_report_type": _top(r.run.report_type for r in selected),
        "by_owner": _top(r.run.created_by for r in selected),
        "by_rule": _top(r.rule for r in selected),
        "oldest_age_s": round(max(ages)) if ages else None,
        "newest_age_s": round(min(ages)) if ages else None,
    }


def _top(values: Iterable[str | None]) -> dict[str, int]:
    counted = Counter(value or "-" for value in values).most_common()
    top = dict(counted[:TOP_GROUPS])
    rest = sum(n for _, n in counted[TOP_GROUPS:])
    return {**top, "other": rest} if rest else top


def target_doc(settings: Settings) -> dict[str, Any]:
    """Where the job acted and as whom (``config.Identity``; no secret is part of it)."""
    ident = settings.identity
    return {"base_url": ident.base_url, "environment": settings.target.environment,
            "auth": ident.auth, "principal": ident.principal, "entity_id": ident.entity_id,
            "id": ident.key}


def filters_doc(settings: Settings) -> dict[str, Any]:
    """The effective selection, as plain data (no secrets live here)."""
    sel = settings.selection
    return {
        "older_than_s": sel.filters.older_than,
        "older_than_by_status_s": dict(sel.filters.older_than_by_status),
        "idle_for_s": sel.filters.idle_for,
        "stalled_for_s": sel.stalled_for,
        "notice_s": sel.notice,
        "statuses": list(sel.filters.statuses),
        "report_types": list(sel.filters.report_types),
        "created_by": list(sel.filters.created_by),
        "report_ids": list(sel.filters.report_ids),
        "exclude": {"report_types": list(sel.exclude.report_types),
                    "created_by": list(sel.exclude.created_by),
                    "report_ids": list(sel.exclude.report_ids)},
        "rules": [{"name": r.name, "statuses": list(r.filters.statuses),
                   "older_than_s": r.filters.older_than,
                   "older_than_by_status_s": dict(r.filters.older_than_by_status),
                   "idle_for_s": r.filters.idle_for,
                   "report_types": list(r.filters.report_types),
                   "created_by": list(r.filters.created_by),
                   "report_ids": list(r.filters.report_ids)} for r in sel.rules],
        "min_age_s": sel.min_age,
        "max_cancel": settings.max_cancel,
    }


def build_header(settings: Settings, result: JobResult, exit_code: int,
                 reason: str | None) -> dict[str, Any]:
    """Every report field but ``runs``, which is streamed by ``run_lines`` (it can be 50k long)."""
    c = result.counters
    return {
        "schema_version": SCHEMA_VERSION,
        "mode": result.mode,
        "job_id": result.job_id,
        "started_at": iso(result.started_at),
        "finished_at": iso(result.finished_at),
        "target": target_doc(settings),
        "filters": filters_doc(settings),
        "exit_code": exit_code,
        "exit_reason": reason,
        "passes": result.passes,
        "warnings": list(result.warnings),
        "counts": counts(result),
        "selection": selection_doc(result,
                                   result.age_clock(result.finished_at or result.started_at)),
        "requests": {"total": c.requests, "by_class": dict(c.by_class),
                     "rate_limited": dict(c.limited), "retries": c.retries,
                     "network_errors": c.network_errors,
                     "token_requests": result.token_requests,
                     "mean_latency_ms": round(c.mean_latency * 1000, 1)},
        "pacing": dict(result.pacing),
        "clock": dict(result.clock),
    }


def run_lines(result: JobResult) -> Iterator[str]:
    """One compact JSON line per listed run (orjson: this runs per run)."""
    for rec in result.records.values():
        yield orjson.dumps(run_entry(rec)).decode()


def failed_ids(result: JobResult) -> list[str]:
    """Ids of the selected runs not (or not surely) cancelled: failed, still_running, unknown."""
    return [rec.key for rec in result.records.values() if rec.outcome in UNSUCCESSFUL]


STDOUT_LINE_CAP = 65536  # log pipelines cut lines at 16-256 KiB: none of ours is longer
STDOUT_WARNINGS = 10  # warnings on the summary line (all of them are in the report file)
STDOUT_TEXT = 1000  # characters of a reason, a warning or an error on a stdout line
STDOUT_SHED = ("pacing", "clock", "selection", "requests", "warnings", "target")
OWNER = "<owner>"
_EMAIL = re.compile(r"[^\s'\"<>@,;]{1,64}@[^\s'\"<>@,;]{1,255}")  # bounded: no backtracking blow-up


def stdout_lines(header: Mapping[str, Any], result: JobResult) -> Iterator[str]:
    """``--output json``: JSON Lines, so ``kubectl logs | jq`` reads them one by one. First the
    summary (the report's header, ``"type": "summary"``, with the filters as counts), then one
    line per *selected* run (``"type": "run"``), never every listed run. No owner's address
    is on any line (log stores keep them): the full report, owners included, is the report
    file. No line is longer than ``STDOUT_LINE_CAP``."""
    yield _summary_line(header) + "\n"
    owners = _owners(header["filters"])
    for rec in result.records.values():
        if rec.selected:
            entry = {"type": "run", **run_entry(rec)}
            del entry["created_by"]
            for key, value in entry.items():  # a server's error text may name the owner
                if isinstance(value, str):
                    entry[key] = _cut(_mask(value, owners))
            yield orjson.dumps(entry).decode() + "\n"


def _summary_line(header: Mapping[str, Any]) -> str:
    """The summary line: the header with owners masked, texts cut, lists as counts, and
    whole fields shed (named in ``shed``) when it would still pass the cap."""
    owners = _owners(header["filters"])
    summary: dict[str, Any] = {
        "type": "summary", **header,
        "filters": _filter_counts(header["filters"]),
        "exit_reason": _cut(_mask(header["exit_reason"], owners)),
        "warnings": [_cut(_mask(w, owners)) for w in header["warnings"][:STDOUT_WARNINGS]],
        "selection": {k: v for k, v in header["selection"].items() if k != "by_owner"}}
    if len(header["warnings"]) > STDOUT_WARNINGS:
        summary["warnings"].append(f"... and {len(header['warnings']) - STDOUT_WARNINGS} more "
                                   "warnings in the report file")
    line = orjson.dumps(summary).decode()
    shed: list[str] = []
    for field in STDOUT_SHED:
        if len(line.encode()) <= STDOUT_LINE_CAP:
            break
        summary.pop(field, None)
        shed.append(field)
        summary["shed"] = shed  # in the report file
        line = orjson.dumps(summary).decode()
    return line


def _owners(filters: Mapping[str, Any]) -> list[str]:
    """Every owner the selection names (filters, exclusions, rules): the only owners our own
    texts can carry."""
    named = [*filters["created_by"], *filters["exclude"]["created_by"],
             *(o for rule in filters["rules"] for o in rule["created_by"])]
    return sorted({o for o in named if o}, key=len, reverse=True)


def _mask(text: str | None, owners: list[str]) -> str | None:
    """``text`` (as much of it as a line shows, and a margin) with every owner masked."""
    if text is None:
        return None
    text = text[:STDOUT_TEXT + 512]
    for owner in owners:
        text = text.replace(owner, OWNER)
    return _EMAIL.sub(OWNER, text)


def _cut(text: str | None) -> str | None:
    return text if text is None or len(text) <= STDOUT_TEXT else text[:STDOUT_TEXT] + "..."


def _filter_counts(filters: Mapping[str, Any]) -> dict[str, Any]:
    """The filters with every list as its length (the lists are in the report file)."""
    def counted(doc: Mapping[str, Any]) -> dict[str, Any]:
        return {k: (len(v) if isinstance(v, list) and k != "statuses" else
                    counted(v) if isinstance(v, dict) and k == "exclude" else v)
                for k, v in doc.items() if k != "rules"}
    return {**counted(filters), "rules": [r["name"][:100] for r in filters["rules"][:20]]}


def report_chunks(header: Mapping[str, Any], lines: Iterable[str]) -> Iterator[str]:
    """The report text: the header fields one per line, then ``runs`` with one run per line.

    Readable with ``less`` and ``grep``, valid JSON for ``jq``, and streamable, so a report of
    50,000 runs never exists in memory as a whole document.
    """
    nl, indent, inner = ("\n", "  ", "    ")
    yield "{" + nl
    for key, value in header.items():
        if key != "runs":
            yield f"{indent}{json.dumps(key)}: {json.dumps(value)}," + nl
    yield indent + '"runs": ['
    first, sep = nl + inner, nl + inner
    for line in lines:
        yield sep + line
        sep = "," + nl + inner
    yield (nl + indent + "]" if sep != first else "]") + nl + "}\n"


def run_entry(rec: RunRecord) -> dict[str, Any]:
    run = rec.run
    return {
        "id": run.id, "report_id": run.report_id, "report_type": run.report_type,
        "status": run.status, "started_on": iso(run.started_on),
        "updated_on": iso(run.updated_on), "created_by": run.created_by,
        "selected": rec.selected, "reason": rec.reason, "rule": rec.rule,
        "problem": run.problem, "pass": rec.pass_no,
        "outcome": rec.outcome.value if rec.outcome is not None else None,
        "attempts": rec.attempts, "error": rec.error, "reconciled": rec.reconciled,
        "report_name": run.report_name, "unchanged_s": _round(rec.unchanged_s),
        "note": rec.note, "cancel_after": iso(rec.cancel_after),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def write_report(path: str, header: Mapping[str, Any], lines: Iterable[str] | None = None) -> None:
    """Write the report atomically. Without ``lines``, ``header["runs"]`` (dicts) is written."""
    if lines is None:
        lines = (json.dumps(run) for run in header.get("runs", ()))
    write_atomic(path, report_chunks(header, lines))
