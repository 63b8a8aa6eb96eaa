"""Human output: the plan table and the one-line summary printed to stdout."""

from __future__ import annotations

from datetime import datetime
from typing import TextIO

from worker.durations import format_duration
from worker.job import JobResult
from worker.models import Outcome
from worker.report import counts

MAX_TABLE_ROWS = 200


def render_table(result: JobResult, now: datetime, out: TextIO) -> None:
    """A readable table of the selected runs (id, report type, status, age, owner, outcome)."""
    rows = [r for r in result.records.values() if r.selected]
    if not rows:
        return
    header = ("RUN ID", "TYPE", "STATUS", "AGE", "OWNER", "RULE", "OUTCOME")
    lines = []
    for rec in rows[:MAX_TABLE_ROWS]:
        age = rec.age_s(now)
        lines.append((rec.run.id or "?", rec.run.report_type or "-", rec.run.status or "-",
                      format_duration(age) if age is not None else "-",
                      rec.run.created_by or "-", rec.rule or "-",
                      rec.outcome.value if rec.outcome else "-"))
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines, strict=False)]
    for line in (header, *lines):
        out.write("  ".join(str(v).ljust(w) for v, w in zip(line, widths, strict=True)).rstrip()
                  + "\n")
    if len(rows) > MAX_TABLE_ROWS:
        out.write(f"... and {len(rows) - MAX_TABLE_ROWS} more (see --report-file)\n")


def summary_line(result: JobResult) -> str:
    """One line: mode, listed, selected, and each non-zero outcome."""
    c = counts(result)
    parts = [f"{result.mode}: listed {c['listed']}", f"selected {c['selected']}"]
    parts += [f"{o.value} {c[o.value]}" for o in Outcome if c[o.value]]
    if c["unparseable"]:
        parts.append(f"unparseable {c['unparseable']}")
    if result.finished_at:
        took = (result.finished_at - result.started_at).total_seconds()
        parts.append(f"in {took:.1f}s")
    return ", ".join(parts) + "".join(f"\nwarning: {w}" for w in result.warnings)
