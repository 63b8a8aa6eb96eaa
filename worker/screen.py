"""What a person reads on stdout: the selection summary (terraform's "Plan: N to destroy" is
the model), the table of selected runs with the ones that need attention first, and the
one-line summary; and the confirmation a terminal ``run`` asks for."""

from __future__ import annotations

import textwrap
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, TextIO

from worker.durations import format_duration
from worker.models import UNSUCCESSFUL, JobResult, Outcome, RunRecord
from worker.report import counts, selection_doc

MAX_TABLE_ROWS = 200
WIDTH = 100  # summary lines wrap here (a group of ten owners is a long line)
ATTENTION = (*sorted(UNSUCCESSFUL), Outcome.NOT_ATTEMPTED)  # shown first in the table
# runs the selection matched but memory held back (worker.memory): shown in the table too
HELD = ("noticed", "would_notice", "notice_pending", "spared")
MEMORY_REASONS = (*HELD, "not_stalled", "first_sighting")
GROUP_LABELS = (("by_status", "status"), ("by_report_type", "report type"),
                ("by_owner", "owner"), ("by_rule", "rule"))


def headline(result: JobResult, doc: Mapping[str, Any]) -> str:
    """``Plan: 811 runs to cancel (of 1000 listed)``, or what a run did with its selection."""
    selected, listed = doc["selected"], doc["listed"]
    if result.mode == "plan":
        return f"Plan: {selected} run(s) to cancel (of {listed} listed)"
    c = counts(result)
    done = c[Outcome.CANCELLED.value]
    return f"Run: cancelled {done} of {selected} selected run(s) (of {listed} listed)"


def summary_lines(result: JobResult, now: datetime,
                  selection: Mapping[str, Any] | None = None) -> list[str]:
    """The headline, then one line per group (status, report type, owner, rule) and the ages.
    ``selection``: the report's ``selection`` (``report.selection_doc``), when already made."""
    doc = selection if selection is not None else selection_doc(result, now)
    lines = [headline(result, doc)]
    held = memory_counts(result)
    if held:
        lines.append(f"  {'memory:':<13} {_counts(held)}")
    if not doc["selected"]:
        return lines
    for key, label in GROUP_LABELS:
        if key == "by_rule" and set(doc[key]) == {"-"}:
            continue  # no [[rules]]: nothing to say
        lines += textwrap.wrap(f"  {label + ':':<13} {_counts(doc[key])}", WIDTH,
                               subsequent_indent=" " * 16, break_on_hyphens=False)
    if doc["oldest_age_s"] is not None:
        lines.append(f"  {'age:':<13} oldest {format_duration(doc['oldest_age_s'])}, "
                     f"newest {format_duration(doc['newest_age_s'])}")
    return lines


def _counts(group: Mapping[str, int]) -> str:
    return ", ".join(f"{name} {count}" for name, count in group.items())


def _priority(rec: RunRecord) -> int:
    if rec.outcome in ATTENTION:
        return ATTENTION.index(rec.outcome)
    return len(ATTENTION) + (not rec.selected)


def memory_counts(result: JobResult) -> dict[str, int]:
    """Runs held back or kept by memory across jobs, by reason (the non-zero ones)."""
    found = Counter(r.reason for r in result.records.values() if r.reason in MEMORY_REASONS)
    return {reason.replace("_", " "): found[reason] for reason in MEMORY_REASONS
            if found[reason]}


def table_rows(records: Iterable[RunRecord]) -> list[RunRecord]:
    """The selected runs, those that need attention (failed, still running, unknown, not
    attempted) first, each group in listing order (oldest first); then the runs a spare or
    a notice held back."""
    return sorted((r for r in records if r.selected or r.reason in HELD), key=_priority)


def render_table(result: JobResult, now: datetime, out: TextIO) -> None:
    """A readable table of the selected runs (id, report type, status, age, owner, outcome)."""
    rows = table_rows(result.records.values())
    if not rows:
        return
    header = ("RUN ID", "TYPE", "STATUS", "AGE", "OWNER", "RULE", "OUTCOME")
    lines = []
    for rec in rows[:MAX_TABLE_ROWS]:
        age = rec.age_s(now)
        lines.append((rec.run.id or "?", rec.run.report_type or "-", rec.run.status or "-",
                      format_duration(age) if age is not None else "-",
                      rec.run.created_by or "-", rec.rule or "-",
                      rec.outcome.value if rec.outcome else
                      rec.reason if rec.reason in HELD else "-"))
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines, strict=False)]
    for line in (header, *lines):
        out.write("  ".join(str(v).ljust(w) for v, w in zip(line, widths, strict=True)).rstrip()
                  + "\n")
    if len(rows) > MAX_TABLE_ROWS:
        out.write(f"... and {len(rows) - MAX_TABLE_ROWS} more (see --report-file)\n")


def render(result: JobResult, now: datetime, out: TextIO,
           selection: Mapping[str, Any] | None = None) -> None:
    """The whole text output: the selection summary, the table, the one-line summary."""
    out.write("\n".join(summary_lines(result, now, selection)) + "\n")
    if any(r.selected or r.reason in HELD for r in result.records.values()):
        out.write("\n")
    render_table(result, now, out)
    out.write(summary_line(result) + "\n")


def summary_line(result: JobResult) -> str:
    """One line: mode, listed, selected, and each non-zero outcome."""
    c = counts(result)
    parts = [f"{result.mode}: listed {c['listed']}", f"selected {c['selected']}"]
    parts += [f"{o.value} {c[o.value]}" for o in Outcome if c[o.value]]
    parts += [f"{reason} {n}" for reason, n in memory_counts(result).items()
              if reason != "noticed"]
    if c["unparseable"]:
        parts.append(f"unparseable {c['unparseable']}")
    if result.finished_at:
        took = (result.finished_at - result.started_at).total_seconds()
        parts.append(f"in {took:.1f}s")
    return ", ".join(parts) + "".join(f"\nwarning: {w}" for w in result.warnings)


def confirmation(records: list[RunRecord], now: datetime) -> str:
    """What a terminal ``run`` shows before it cancels: the runs about to be cancelled, in
    counts, and the question."""
    view = JobResult(mode="plan", started_at=now, records={r.key: r for r in records})
    lines = summary_lines(view, now)[1:]
    return "\n".join([f"About to cancel {len(records)} report run(s):", *lines,
                      "Type yes to cancel them (anything else cancels nothing): "])


def ask(records: list[RunRecord], now: datetime, read: TextIO, write: TextIO) -> bool:
    """Show the confirmation on ``write`` and read the answer from ``read``; only ``yes``
    (any case, spaces ignored) goes on. End of input is a no."""
    write.write(confirmation(records, now))
    write.flush()
    answer = read.readline()
    return answer.strip().lower() == "yes"
