"""Benchmark: the state store (issue 23) on SQLite and PostgreSQL. Prints figures; not a test.

Three targets from the issue:

1. recording 50,000 listed runs adds <= 2 s to a job (SQLite, and PostgreSQL on loopback);
2. ``history`` over a year of hourly jobs of 200 runs each (~1.75 M sightings) answers in
   <= 2 s;
3. the peak RSS of a 50,000-run job stays <= 80 MB with the state on.

    .venv/bin/python bench/state.py --before d5fc305   # the issue's sizes (about 8 minutes)
    .venv/bin/python bench/state.py --quick            # a smoke run (about 40 s)

It measures the tree it lives in (worker/ beside bench/): to measure a revision while others
edit the working tree, run it from an extracted copy (``git archive REV | tar -x -C DIR``,
then ``DIR/bench/state.py --repo /path/to/repo``); bench/README.md says how the figures there
were taken.

PostgreSQL is a throwaway cluster (tests/support/pgcluster.py) on 127.0.0.1, with durability
turned back on (fsync, synchronous_commit, full_page_writes) so it writes as a real server
does; without its binaries the PostgreSQL figures are skipped, and said so. SQLite files live
in a temp directory on the machine's disk. See bench/README.md for the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import hashlib
import importlib.util
import io
import json
import os
import pstats
import random
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "support"))  # pgcluster.py

from sqlalchemy import (  # noqa: E402
    event,
    text,
)

from worker.config import Settings, load_settings  # noqa: E402
from worker.memory import Memory, record_job  # noqa: E402
from worker.models import IN_PROGRESS, JobResult, Outcome, ReportRun, RunRecord  # noqa: E402
from worker.report import filters_doc  # noqa: E402
from worker.state.history import (  # noqa: E402
    History,
    Scope,
    _count,
    _jobs_query,
    _stuck_query,
    read_history,
)
from worker.state.location import resolve  # noqa: E402
from worker.state.schema import jobs, runs, sightings  # noqa: E402
from worker.state.store import Store, open_store  # noqa: E402

PAGE = 250  # runs per listing page: what a job recalls at a time (the emulator's page cap)
CHUNK = 2000  # rows per statement, as worker/state/store.py records them
RECORD_TARGET_S = 2.0
HISTORY_TARGET_S = 2.0
RSS_TARGET_MB = 80.0
OWNERS = tuple(f"analyst{i:02d}@example.com" for i in range(20))
REPORT_TYPES = ("Detail", "Summary")
HOUR, DAY = 3600.0, 86400.0


def settings_for_bench() -> Settings:
    return load_settings("run", {"target.base_url": "https://rest.zuora.com",
                                 "filters.older_than": "2h"},
                         {"ZUORA_CLIENT_ID": "x", "ZUORA_CLIENT_SECRET": "y"}, None)


def hex32(*parts: object) -> str:
    """A stable Zuora-style id (32 hex digits) for ``parts``."""
    return hashlib.blake2b(repr(parts).encode(), digest_size=16).hexdigest()


@dataclass(frozen=True)
class Catalog:
    """~50 reports (a few of them much more often stuck than the rest) and ~20 owners."""

    reports: tuple[tuple[str, str, str], ...]
    slots: tuple[int, ...]  # a Zipf-like draw: slot -> report index

    @classmethod
    def make(cls, n: int = 50) -> Catalog:
        reports = tuple((hex32("report", i), f"Report {i:02d}", REPORT_TYPES[i % 3 == 0])
                        for i in range(n))
        slots = tuple(i for i in range(n) for _ in range(round(200 / (i + 1))))
        return cls(reports, slots)

    def of(self, run_id: str) -> tuple[str, str, str, str]:
        """(report id, name, type, owner) of a run: fixed per run, as on the server."""
        report = self.reports[self.slots[int(run_id[:6], 16) % len(self.slots)]]
        return (*report, OWNERS[int(run_id[6:10], 16) % len(OWNERS)])


# ---------------------------------------------------------------- backends


@dataclass
class Backend:
    """Where fresh stores come from: a SQLite file each, or a database each on one cluster."""

    name: str
    fresh: Callable[[], str]  # a new store's --state value (a path, or a postgresql:// URL)

    @property
    def is_pg(self) -> bool:
        return self.name == "PostgreSQL"

    def child_args(self, value: str) -> tuple[list[str], dict[str, str]]:
        """The flags and environment that name ``value`` to a zuora-reaper process: a
        PostgreSQL URL (it holds a password) only through ZUORA_REAPER_STATE."""
        if self.is_pg:
            return [], {"ZUORA_REAPER_STATE": value}
        return ["--state", value], {}


def open_value(value: str) -> Store:
    location = resolve(value, {})
    assert location is not None
    return open_store(location)


@contextlib.contextmanager
def backends(tmp: Path, want_pg: bool) -> Iterator[list[Backend]]:
    counter = iter(range(1, 10**6))
    found = [Backend("SQLite", lambda: str(tmp / f"state-{next(counter)}.db"))]
    if not want_pg:
        print("PostgreSQL: skipped (--no-pg)")
        yield found
        return
    try:
        from pgcluster import PgCluster, PgUnavailable
    except ImportError as exc:
        print(f"PostgreSQL: unavailable ({exc}); its figures are skipped")
        yield found
        return
    try:
        pg = PgCluster.start()
    except PgUnavailable as exc:
        print(f"PostgreSQL: unavailable, its figures are skipped: {str(exc).splitlines()[0]}")
        yield found
        return
    try:
        durable(pg)
        version = pg_version(pg)
        print(f"PostgreSQL: {version}, throwaway cluster on 127.0.0.1:{pg.port} "
              "(fsync, synchronous_commit and full_page_writes on)")
        yield [*found, Backend("PostgreSQL", pg.create_database)]
    finally:
        pg.stop()


def durable(pg: Any) -> None:
    """Undo pgcluster's speed settings: a real server syncs its commits."""
    import psycopg

    with psycopg.connect(pg.url("postgres"), autocommit=True) as conn:
        for name in ("fsync", "synchronous_commit", "full_page_writes"):
            conn.execute(f"ALTER SYSTEM SET {name} = on")
        conn.execute("SELECT pg_reload_conf()")
    time.sleep(0.5)


def pg_version(pg: Any) -> str:
    import psycopg

    with psycopg.connect(pg.url("postgres"), autocommit=True) as conn:
        row = conn.execute("SHOW server_version").fetchone()
        fsync = conn.execute("SHOW fsync").fetchone()
    assert row is not None
    assert fsync is not None
    return f"PostgreSQL {row[0]} (fsync={fsync[0]})"


# ---------------------------------------------------------------- where statements spend time


class StatementClock:
    """Time spent inside the driver per kind of statement (SQLAlchemy cursor events)."""

    def __init__(self, store: Store) -> None:
        self.engine = store.engine
        self.spent: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()
        self._started: dict[int, float] = {}

    @staticmethod
    def kind(statement: str) -> str:
        words = statement.split()
        verb = words[0].upper()
        after = words[words.index("FROM") + 1:] if verb == "SELECT" and "FROM" in words else words
        table = next((w for w in after if w.startswith("reaper_")), "?").split("(")[0]
        if verb == "DELETE" and " IN " not in statement.upper():
            return f"DELETE {table} (prune)"
        return f"{verb} {table}"

    def _before(self, conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        self._started[id(cursor)] = time.perf_counter()

    def _after(self, conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        began = self._started.pop(id(cursor), None)
        if began is not None:
            key = self.kind(statement)
            self.spent[key] += time.perf_counter() - began
            self.calls[key] += 1

    def __enter__(self) -> StatementClock:
        event.listen(self.engine, "before_cursor_execute", self._before)
        event.listen(self.engine, "after_cursor_execute", self._after)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._before)
        event.remove(self.engine, "after_cursor_execute", self._after)

    def lines(self, total: float) -> list[str]:
        inside = sum(self.spent.values())
        out = [f"      {key:<34} {self.calls[key]:>5} calls {spent:7.3f} s"
               for key, spent in self.spent.most_common()]
        out.append(f"      {'in the driver, all':<34} {'':>5}       {inside:7.3f} s; Python "
                   f"around it (rows, SQLAlchemy) {max(0.0, total - inside):.3f} s")
        return out


# ---------------------------------------------------------------- 1. recording a 50k-run job


def listed_runs(n: int, now: datetime, seed: int = 1) -> list[ReportRun]:
    """``n`` in-progress runs as a listing returns them; 1 in 100 is older than 2 h."""
    rng = random.Random(f"runs:{seed}")
    catalog = Catalog.make()
    out = []
    for i in range(n):
        run_id = hex32("run", seed, i)
        report_id, name, rtype, owner = catalog.of(run_id)
        age = rng.uniform(3 * HOUR, 30 * HOUR) if i % 100 == 0 else rng.uniform(60, 2 * HOUR)
        started = now - timedelta(seconds=age)
        updated = started + timedelta(seconds=rng.uniform(0, age))
        out.append(ReportRun(run_id, report_id, rtype, rng.choice(IN_PROGRESS), started,
                             updated, owner, report_name=name))
    return out


def moved(all_runs: list[ReportRun], share: float) -> list[ReportRun]:
    """The same runs an hour later: ``share`` of them moved (a new updatedOn)."""
    step = max(1, round(1 / share)) if share else 0
    return [ReportRun(r.id, r.report_id, r.report_type, r.status, r.started_on,
                      (r.updated_on or r.started_on) + timedelta(minutes=30), r.created_by,
                      report_name=r.report_name)
            if step and i % step == 0 else r for i, r in enumerate(all_runs)]


@dataclass
class JobTiming:
    label: str
    runs: int
    open_s: float = 0.0
    memory_s: float = 0.0  # Memory(): reads the spares in force
    recall_s: float = 0.0
    judge_s: float = 0.0
    record_s: float = 0.0
    statements: list[str] = field(default_factory=list)

    @property
    def added_s(self) -> float:
        return self.open_s + self.memory_s + self.recall_s + self.judge_s + self.record_s


def listing(store: Store, settings: Settings, listed: list[ReportRun],
            timing: JobTiming | None = None) -> JobResult:
    """A job's listing with the state on: read the spares, recall each page's runs before
    judging them, judge; then the selected runs are cancelled."""
    timing = timing or JobTiming("", len(listed))
    started = datetime.now(UTC)
    result = JobResult("run", started, job_id=os.urandom(8).hex())
    began = time.perf_counter()
    memory = Memory(store, settings, started)
    timing.memory_s = time.perf_counter() - began
    limit = timedelta(seconds=settings.selection.filters.older_than or 0)
    for start in range(0, len(listed), PAGE):
        page = listed[start:start + PAGE]
        began = time.perf_counter()
        memory.recall(page)
        timing.recall_s += time.perf_counter() - began
        now = datetime.now(UTC)
        recs = []
        for run in page:
            assert run.id is not None
            assert run.started_on is not None
            old = now - run.started_on >= limit
            recs.append(RunRecord(run, run.id, 1, old, "selected" if old else "too_young"))
        began = time.perf_counter()
        for rec in recs:
            memory.judge(rec, now)
        timing.judge_s += time.perf_counter() - began
        result.records.update((rec.key, rec) for rec in recs)
    for rec in result.records.values():
        if rec.selected:
            rec.settle(Outcome.CANCELLED)
    result.finished_at = datetime.now(UTC)
    return result


def simulate_job(value: str, settings: Settings, listed: list[ReportRun], label: str, *,
                 profile: bool = False) -> JobTiming:
    """What a job with the state on does beyond one without: open the store, the listing's
    part (``listing``), and record the job at the end."""
    timing = JobTiming(label, len(listed))
    began = time.perf_counter()
    store = open_value(value)
    timing.open_s = time.perf_counter() - began
    try:
        result = listing(store, settings, listed, timing)
        profiler = cProfile.Profile() if profile else None
        with StatementClock(store) as clock:
            began = time.perf_counter()
            if profiler:
                profiler.enable()
            record_job(store, settings, result, 0)
            if profiler:
                profiler.disable()
            timing.record_s = time.perf_counter() - began
        timing.statements = clock.lines(timing.record_s)
        if profiler:
            timing.statements += profile_lines(profiler)
    finally:
        store.close()
    return timing


def profile_lines(profiler: cProfile.Profile, top: int = 14) -> list[str]:
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    lines = [line for line in out.getvalue().splitlines() if line.strip()]
    start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
    return ["      cProfile of record_job, by own time:",
            *(f"        {line.strip()[:150]}" for line in lines[start:start + top + 1])]


def analyze(value: str) -> None:
    """What autovacuum does within a minute of a job that grew a PostgreSQL table."""
    store = open_value(value)
    try:
        with store.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))
    finally:
        store.close()


def connect_ms(value: str, times: int = 20) -> float:
    """One ``engine.connect()`` and a trivial query: what each recall page pays first (the
    store's engine has no pool: every read opens a connection of its own)."""
    store = open_value(value)
    try:
        began = time.perf_counter()
        for _ in range(times):
            with store.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        return 1e3 * (time.perf_counter() - began) / times
    finally:
        store.close()


def bench_record(backend: Backend, settings: Settings, n: int, profile: bool,
                 checks: list[Check], repeat: int) -> None:
    print(f"\n[{backend.name}] recording a job of {n:,} listed runs (pages of {PAGE}); "
          f"{repeat} rounds of three jobs, each round on a fresh store")
    now = datetime.now(UTC)
    first = listed_runs(n, now)
    second = moved(first, 0.1)
    rounds: list[list[JobTiming]] = []
    for _ in range(repeat):
        value = backend.fresh()
        timings = [simulate_job(value, settings, first, "job 1: a fresh store, every run new",
                                profile=profile),
                   simulate_job(value, settings, second,
                                "job 2: at once, the same runs, 10% moved", profile=profile)]
        if backend.is_pg:
            analyze(value)
        third = ("job 3: after ANALYZE (autovacuum's), again" if backend.is_pg
                 else "job 3: the same runs again")
        timings.append(simulate_job(value, settings, second, third, profile=profile))
        rounds.append(timings)
    print(f"  {'job (the best round of each)':<44} {'open':>6} {'spares':>6} {'recall':>6} "
          f"{'judge':>6} {'record':>7} {'added':>6}  all rounds")
    best = [min((r[i] for r in rounds), key=lambda t: t.added_s) for i in range(3)]
    for i, t in enumerate(best):
        every = ", ".join(f"{r[i].added_s:.2f}" for r in rounds)
        print(f"  {t.label:<44} {t.open_s:6.3f} {t.memory_s:6.3f} {t.recall_s:6.3f} "
              f"{t.judge_s:6.3f} {t.record_s:7.3f} {t.added_s:6.3f}  {every}")
    print(f"    {best[-1].label}: record_job, by statement")
    print("\n".join(best[-1].statements))
    pages = -(-n // PAGE)
    conn_ms = connect_ms(value)
    print(f"  a new connection and SELECT 1: {conn_ms:.1f} ms; Store.recall pays one a page, "
          f"{pages} pages: {conn_ms * pages / 1e3:.2f} s of the recall")
    for i, t in enumerate(best):
        median = statistics.median(r[i].added_s for r in rounds)
        checks.append(Check(f"record {n:,} runs, {t.label.split(':')[0]}", backend.name,
                            t.added_s, RECORD_TARGET_S, "s",
                            f"best of {repeat} (median {median:.2f}): open {t.open_s:.2f} + "
                            f"recall {t.recall_s:.2f} + judge {t.judge_s:.2f} + record "
                            f"{t.record_s:.2f}"))




def batched(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]










# ---------------------------------------------------------------- 2. history over a year


@dataclass
class YearShape:
    jobs: int
    per_job: int
    stuck_share: float = 0.05


def year_of_jobs(shape: YearShape, now: float, settings: Settings
                 ) -> tuple[list[dict[str, Any]], Iterator[tuple[Any, ...]]]:
    """The job rows, and the sightings (tuples in ``sighting_columns()`` order) of hourly
    jobs over the last ``shape.jobs`` hours. Per job, of ``per_job`` listed runs: ~5% stuck
    (cancelled, a few failed, noticed then pending, spared for a week at a time), the rest
    young runs each seen by two jobs in a row."""
    rng = random.Random("year")
    catalog = Catalog.make()
    target = settings.identity.key
    ident = settings.identity
    thresholds = json.dumps(filters_doc(settings))
    stuck = max(5, round(shape.per_job * shape.stuck_share))
    young = shape.per_job - stuck
    carried, new = young // 2, young - young // 2
    cancels = stuck - 4  # 4 slots: noticed, notice_pending, two spared
    first = now - shape.jobs * HOUR
    job_rows: list[dict[str, Any]] = []
    for j in range(shape.jobs):
        t = first + j * HOUR
        mode = "plan" if j % 24 == 0 else "run"
        failed = sum(1 for s in range(cancels) if (j * cancels + s) % 50 == 0)
        job_rows.append({
            "job_id": hex32("job", j)[:16], "target": target, "base_url": ident.base_url,
            "principal": ident.principal, "entity_id": ident.entity_id, "mode": mode,
            "started_at": t, "finished_at": t + 40.0, "exit_code": 1 if failed else 0,
            "listed": shape.per_job, "selected": cancels, "cancelled": cancels - failed,
            "noticed": 1, "spared": 2, "failed": failed, "thresholds": thresholds})

    def row(job_id: str, run_id: str, t: float, age: float, reason: str,
            outcome: str | None, is_stuck: bool, unchanged: float | None) -> tuple[Any, ...]:
        report_id, name, rtype, owner = catalog.of(run_id)
        started = t - age
        return (job_id, target, run_id, t, IN_PROGRESS[int(run_id[-1], 16) % 3],
                started + age / 2, started, owner, report_id, name, rtype, reason, None,
                outcome, is_stuck, age, unchanged)

    def sightings_gen() -> Iterator[tuple[Any, ...]]:
        for j, job in enumerate(job_rows):
            t, job_id = job["started_at"], job["job_id"]
            for k in range(young):
                again = k < carried  # listed by the previous job too
                idx = (j - 1) * new + k if again else j * new + (k - carried)
                age = rng.uniform(60, HOUR) + (HOUR if again else 0.0)
                yield row(job_id, hex32("young", idx), t, age, "too_young", None, False,
                          rng.uniform(0, HOUR) if again else None)
            for s in range(cancels):
                outcome = "failed" if (j * cancels + s) % 50 == 0 else "cancelled"
                age = rng.lognormvariate(2.0, 0.6) * HOUR + 2 * HOUR
                yield row(job_id, hex32("cancel", j, s), t, age, "selected", outcome, True,
                          rng.uniform(0, HOUR))
            yield row(job_id, hex32("notice", j), t, 3 * HOUR, "noticed", "noticed", True,
                      HOUR)
            yield row(job_id, hex32("notice", j - 1), t, 4 * HOUR, "notice_pending", None,
                      True, 2 * HOUR)
            for s in range(2):  # two runs spared for a week at a time
                yield row(job_id, hex32("spared", j // 168, s), t, (j % 168 + 3) * HOUR,
                          "spared", None, True, (j % 168) * HOUR)

    return job_rows, sightings_gen()


def sighting_columns() -> list[str]:
    return [c.name for c in sightings.columns if c.name != "id"]


def fill(store: Store, shape: YearShape, now: float, settings: Settings) -> dict[str, int]:
    """Bulk-load a year of jobs (the driver's fastest path: COPY on PostgreSQL, executemany on
    SQLite), then each run's latest state from its sightings, as the jobs would have left it."""
    job_rows, rows = year_of_jobs(shape, now, settings)
    with store.engine.begin() as conn:
        conn.execute(jobs.insert(), job_rows)
    cols = sighting_columns()
    names = ", ".join(cols)
    raw = store.engine.raw_connection()
    try:
        cursor = raw.cursor()
        if store.is_postgresql:  # a year in one COPY: past the store's statement timeout
            cursor.execute("SET statement_timeout = 0")
            with cursor.copy(f"COPY {sightings.name} ({names}) FROM STDIN") as copy:
                for values in rows:
                    copy.write_row(values)
        else:
            marks = ", ".join("?" for _ in cols)
            cursor.execute("BEGIN")  # one transaction, whatever the connection's mode
            cursor.executemany(f"INSERT INTO {sightings.name} ({names}) VALUES ({marks})",  # noqa: S608
                               rows)
        cursor.close()
        raw.commit()
    finally:
        raw.close()
    with store.engine.begin() as conn:
        if store.is_postgresql:  # a bulk load, past the store's statement timeout
            conn.execute(text("SET LOCAL statement_timeout = 0"))
        conn.execute(text(
            f"INSERT INTO {runs.name} (target, run_id, status, updated_on, state_since, "  # noqa: S608
            "first_seen, last_seen) SELECT target, run_id, max(status), max(updated_on), "
            f"min(seen_at), min(seen_at), max(seen_at) FROM {sightings.name} "
            "GROUP BY target, run_id"))
    if store.is_postgresql:  # what autovacuum does on a store that grew job by job
        with store.engine.connect() as conn:
            auto = conn.execution_options(isolation_level="AUTOCOMMIT")
            auto.execute(text("SET statement_timeout = 0"))
            auto.execute(text("VACUUM ANALYZE"))
    return counts(store)


def counts(store: Store) -> dict[str, int]:
    with store.engine.connect() as conn:
        found = {name: int(conn.execute(text(f"SELECT count(*) FROM {name}")).scalar() or 0)  # noqa: S608
                 for name in (jobs.name, sightings.name, runs.name)}
        found["stuck sightings"] = int(conn.execute(text(
            f"SELECT count(*) FROM {sightings.name} WHERE stuck")).scalar() or 0)  # noqa: S608
    return found


def bench_history(backend: Backend, settings: Settings, shape: YearShape, pacing: ModuleType,
                  checks: list[Check], record_runs: int, tmp: Path, repeat: int) -> None:
    total = shape.jobs * shape.per_job
    print(f"\n[{backend.name}] history over {shape.jobs:,} hourly jobs x {shape.per_job} runs "
          f"({total:,} sightings)")
    value = backend.fresh()
    now = time.time()
    store = open_value(value)
    try:
        began = time.perf_counter()
        found = fill(store, shape, now, settings)
        print(f"  filled in {time.perf_counter() - began:.1f} s: "
              + ", ".join(f"{k} {v:,}" for k, v in found.items()))
        if not store.is_postgresql:
            size = os.path.getsize(store.location.path or "")
            print(f"  the SQLite file: {size / 2**20:.0f} MB (no ANALYZE: the code never runs it)")
    finally:
        store.close()
    scope = Scope(since=now - 400 * DAY)
    spent = []
    for _ in range(repeat):
        store = open_value(value)
        try:
            began = time.perf_counter()
            history = read_history(store, scope)
            spent.append(time.perf_counter() - began)
        finally:
            store.close()
    print(f"  read_history(since 400 days): {', '.join(f'{x:.3f}' for x in spent)} s; "
          f"{history.jobs:,} jobs, {history.cancelled:,} cancelled, {history.noticed:,} "
          f"noticed, {history.spared:,} spared, {history.failed:,} failed, "
          f"{len(history.repeat_offenders)} repeat offenders, {len(history.by_week)} weeks")
    print("\n".join(history_breakdown(value, scope)))
    empty = backend.fresh()
    open_value(empty).close()  # the schema, no rows: the process's fixed cost
    base = [history_process(pacing, backend, empty, tmp) for _ in range(repeat)]
    runs_ = [history_process(pacing, backend, value, tmp) for _ in range(repeat)]
    doc = runs_[-1][4]
    print(f"  zuora-reaper history --output json --since 400d, a process: wall "
          f"{', '.join(f'{r[0]:.3f}' for r in runs_)} s, CPU {runs_[-1][1]:.2f} s, peak RSS "
          f"{runs_[-1][2]:.0f} MB, exit {runs_[-1][3]}; jobs {doc.get('jobs')}, cancelled "
          f"{doc.get('cancelled')}")
    print(f"    the same on an empty store (start-up, open, JSON): wall "
          f"{', '.join(f'{r[0]:.3f}' for r in base)} s, peak RSS {base[-1][2]:.0f} MB")
    checks.append(Check("history over a year: read_history", backend.name, min(spent),
                        HISTORY_TARGET_S, "s",
                        f"best of {repeat} (median {statistics.median(spent):.2f})"))
    walls = [r[0] for r in runs_]
    checks.append(Check("history over a year: the process", backend.name, min(walls),
                        HISTORY_TARGET_S, "s",
                        f"best of {repeat} (median {statistics.median(walls):.2f}); empty "
                        f"store {min(r[0] for r in base):.2f} s; RSS {runs_[-1][2]:.0f} MB"))
    # what a job pays once the store holds a year: the prune scans, the indexes are bigger
    now_dt = datetime.now(UTC)
    for n in (shape.per_job, record_runs):
        tries = [simulate_job(value, settings, listed_runs(n, now_dt, seed=7 + n + k),
                              f"a {n:,}-run job on this year's store") for k in range(repeat)]
        t = min(tries, key=lambda x: x.added_s)
        print(f"  {t.label}: added {t.added_s:.3f} s, best of "
              f"{', '.join(f'{x.added_s:.3f}' for x in tries)} (open {t.open_s:.3f}, recall "
              f"{t.recall_s:.3f}, judge {t.judge_s:.3f}, record {t.record_s:.3f}); "
              "record_job by statement:")
        print("\n".join(t.statements))
        checks.append(Check(f"record {n:,} runs on a year's store", backend.name,
                            t.added_s, RECORD_TARGET_S, "s",
                            f"best of {repeat}; record {t.record_s:.2f}, of which prune "
                            f"{prune_share(t.statements):.2f}"))


def history_process(pacing: ModuleType, backend: Backend, value: str, tmp: Path
                    ) -> tuple[float, float, float, int, dict[str, Any]]:
    """``zuora-reaper history --output json`` as a process: wall, CPU, peak RSS, exit code
    and its answer."""
    flags, env = backend.child_args(value)
    out = tmp / f"history-{time.monotonic_ns()}.json"
    cmd = [sys.executable, "-m", "worker", "history", "--output", "json", "--since", "400d",
           "--log-level", "warning", *flags]
    _, (m,) = lean({"op": "child", "cmd": cmd, "env": {**pacing.reaper_env(), **env},
                    "stdout": str(out)})
    code = m["exit_code"]
    doc = json.loads(out.read_text()) if code == 0 else {}
    return m["wall_s"], m["cpu_s"], m["maxrss_mb"], code, doc


def history_breakdown(value: str, scope: Scope) -> list[str]:
    """Where read_history's time goes: the jobs query, the stuck sightings through the driver
    alone and through SQLAlchemy's rows, and the counting in Python; the stuck query's plan."""
    store = open_value(value)
    try:
        with store.engine.connect() as conn:
            began = time.perf_counter()
            conn.execute(_jobs_query(scope)).all()
            jobs_s = time.perf_counter() - began
            query = str(_stuck_query(scope).compile(store.engine,
                                                    compile_kwargs={"literal_binds": True}))
            began = time.perf_counter()
            conn.exec_driver_sql(query).fetchall()
            driver_s = time.perf_counter() - began
            began = time.perf_counter()
            rows = conn.execute(_stuck_query(scope)).all()
            rows_s = time.perf_counter() - began
            explain = "EXPLAIN " if store.is_postgresql else "EXPLAIN QUERY PLAN "
            plan = [str(r[-1]).strip() for r in conn.exec_driver_sql(explain + query)]
        began = time.perf_counter()
        _count(History(scope.since), list(rows))
        count_s = time.perf_counter() - began
    finally:
        store.close()
    return [f"    where it goes: jobs query {jobs_s:.3f} s; the {len(rows):,} stuck sightings "
            f"{rows_s:.3f} s through SQLAlchemy ({driver_s:.3f} s of it the driver alone); "
            f"counting in Python {count_s:.3f} s",
            f"    the stuck query's plan: {' / '.join(plan[:3])}"]


def prune_share(lines: list[str]) -> float:
    return sum(float(line.split()[-2]) for line in lines if "(prune)" in line)


# ---------------------------------------------------------------- 3. peak RSS of a plan job


def load_pacing_bench() -> ModuleType:
    """bench/bench.py (bench/ is no package): its emulator, ``run_reaper`` and ``run_child``."""
    spec = importlib.util.spec_from_file_location("bench_pacing", ROOT / "bench" / "bench.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


# A lean launcher: ru_maxrss counts the process a child was forked from (its RSS at the fork),
# and this script holds tens of thousands of runs; so the measured processes are started by a
# fresh interpreter that imports bench/bench.py alone (~15 MB), with bench.py's own functions.
LAUNCHER = """
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import bench as pacing
job = json.load(sys.stdin)
if job.get("compile"):
    pacing.compile_bytecode()
rss = [l for l in open("/proc/self/status") if l.startswith("VmRSS:")][0].split()[1]
print(json.dumps({"launcher_rss_mb": int(rss) / 1024}), flush=True)
if job["op"] == "child":
    with open(job["stdout"], "w") as fh:
        wall, cpu, peak, code = pacing.run_child(job["cmd"], job["env"], stdout=fh)
    print(json.dumps({"wall_s": wall, "cpu_s": cpu, "maxrss_mb": peak, "exit_code": code}))
else:
    cfg = pacing.BenchConfig(**job["cfg"])
    for case in job["cases"]:
        env = {**job["env"], **case["env"]}
        pacing.reaper_env = lambda env=env: env  # run_reaper's child environment
        m = pacing.run_reaper(case["label"], job["n"], cfg, Path(job["tmp"]), case["flags"],
                              command="plan")
        print(json.dumps({"label": m.label, "wall_s": m.wall_s, "cpu_s": m.cpu_s,
                          "maxrss_mb": m.maxrss_mb, "job_s": m.job_s,
                          "exit_code": m.exit_code}), flush=True)
"""


def lean(job: dict[str, Any], tree: Path = ROOT) -> tuple[float, list[dict[str, Any]]]:
    """Run ``job`` in the lean launcher, with the bench.py (and so the worker/) of ``tree``:
    its RSS, and one result per measured process."""
    proc = subprocess.run([sys.executable, "-c", LAUNCHER, str(tree / "bench")],
                          input=json.dumps(job), capture_output=True, text=True, check=False,
                          cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"the launcher failed: {proc.stderr.strip()[-2000:]}")
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    return lines[0]["launcher_rss_mb"], lines[1:]


def bench_rss(pacing: ModuleType, found: list[Backend], n: int, checks: list[Check],
              tmp: Path, before: str | None, repo: str) -> None:
    cfg = {"rate": 500.0, "rate_window": 10.0, "concurrency": 40, "latency_ms": 50.0,
           "concurrency_retry_after": 120.0, "naive_cap_s": 20.0}
    flags = ["--rate", "10000", "--concurrency", str(cfg["concurrency"])]
    print(f"\npeak RSS of zuora-reaper plan, {n:,} runs listed and selected (would_cancel), "
          f"as bench.py --rss-runs measures it (bench.run_reaper)")
    pacing.compile_bytecode()
    imports = {label: import_hwm(what) for label, what in IMPORTS}
    print("  start-up alone, peak RSS (VmHWM) of a child that imports and exits: "
          + "; ".join(f"{k} {v:.0f} MB" for k, v in imports.items()))
    cases = [{"label": "--state none", "flags": [*flags, "--state", "none"], "env": {}}]
    for backend in found:
        value = backend.fresh()
        extra, env = backend.child_args(value)
        cases += [{"label": f"{backend.name}, {what}", "flags": [*flags, *extra], "env": env}
                  for what in ("a fresh store", "the same store again")]
    launcher_rss, results = lean({"op": "reaper", "n": n, "cfg": cfg, "tmp": str(tmp),
                                  "env": pacing.reaper_env(), "cases": cases})
    if before:  # the same job on the tree before the state store, as the baseline
        tree = tmp / "before"
        tree.mkdir()
        archive = subprocess.run(["git", "-C", repo, "archive", before], check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
        _, older = lean({"op": "reaper", "n": n, "cfg": cfg, "tmp": str(tmp), "compile": True,
                         "env": pacing.reaper_env(),
                         "cases": [{"label": f"before the store ({before})", "flags": flags,
                                    "env": {}}]}, tree)
        results = older + results
    print(f"  (launched from a process of {launcher_rss:.0f} MB RSS: no figure is below it)")
    none = next(m["maxrss_mb"] for m in results if m["label"] == "--state none")
    for m in results:
        label = m["label"]
        print(f"  {label:<34} peak RSS {m['maxrss_mb']:5.0f} MB  job {m['job_s']:6.2f} s  "
              f"process {m['wall_s']:6.2f} s  CPU {m['cpu_s']:5.2f} s  exit {m['exit_code']}")
        if ", " in label:
            backend_name, what = label.split(", ", 1)
            checks.append(Check(f"peak RSS, {n:,}-run plan, {what}", backend_name,
                                m["maxrss_mb"], RSS_TARGET_MB, "MB",
                                f"--state none: {none:.0f} MB"))
    record_heap(n)


IMPORTS = (
    ("python", "pass"),
    ("sqlalchemy", "sqlalchemy"),
    ("a job's modules (--state none too)", "worker.cli, worker.job"),
    ("+ alembic (a migration)", "worker.cli, worker.job, alembic.command, alembic.config"),
    ("+ psycopg", "worker.cli, worker.job, psycopg, sqlalchemy.dialects.postgresql.psycopg"),
)


def vm_kb(name: str, status: str) -> float:
    line = next(line for line in status.splitlines() if line.startswith(name + ":"))
    return float(line.split()[1])


def import_hwm(modules: str) -> float:
    """Peak RSS (MB) of a fresh interpreter that imports ``modules``: its own VmHWM, which
    (unlike ru_maxrss) does not count the parent it was forked from."""
    code = (f"import {modules}\n" if modules != "pass" else "") + (
        "print(open('/proc/self/status').read())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout
    return vm_kb("VmHWM", out) / 1024


def record_heap(n: int) -> None:
    """Where a job's memory goes with the state on: the Python heap that recording adds
    (tracemalloc peak of record_job alone), next to the job's own records."""
    settings = settings_for_bench()
    listed = listed_runs(n, datetime.now(UTC))
    with tempfile.TemporaryDirectory() as tmpdir:
        store = open_value(str(Path(tmpdir) / "heap.db"))
        try:
            tracemalloc.start()
            started = datetime.now(UTC)
            result = JobResult("plan", started, job_id=os.urandom(8).hex())
            for run in listed:
                assert run.id is not None
                result.records[run.id] = RunRecord(run, run.id, 1, True, "selected")
            memory = Memory(store, settings, started)
            for start in range(0, n, PAGE):
                memory.recall(listed[start:start + PAGE])
                for run in listed[start:start + PAGE]:
                    memory.judge(result.records[str(run.id)], started)
            held = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            record_job(store, settings, result, 0)
            peak = tracemalloc.get_traced_memory()[1] - held
            snapshot = tracemalloc.take_snapshot()
            tracemalloc.stop()
        finally:
            store.close()
    print(f"  Python heap (tracemalloc) for {n:,} runs: the job's records {held / 2**20:.0f} MB "
          f"(runs built outside it); record_job adds a peak of {peak / 2**20:.1f} MB")
    del snapshot


# ---------------------------------------------------------------- the verdicts


@dataclass
class Check:
    what: str
    backend: str
    value: float
    limit: float
    unit: str
    detail: str = ""

    @property
    def met(self) -> bool:
        return self.value <= self.limit


def print_checks(checks: list[Check]) -> None:
    print("\nagainst the targets")
    head = ("target", "backend", "measured", "limit", "met", "detail")
    table = [head] + [(c.what, c.backend, f"{c.value:.2f} {c.unit}",
                       f"<= {c.limit:g} {c.unit}",
                       "yes" if c.met else f"NO (+{max(c.value - c.limit, 0.01):.2f} {c.unit})",
                       c.detail)
                      for c in checks]
    widths = [max(len(r[i]) for r in table) for i in range(len(head))]
    for r in table:
        print("  " + "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True))
              .rstrip())


def machine() -> str:
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    import sqlite3

    import sqlalchemy

    return (f"{len(os.sched_getaffinity(0))} vCPU {model}; Python {sys.version.split()[0]}, "
            f"SQLite {sqlite3.sqlite_version}, SQLAlchemy {sqlalchemy.__version__}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true",
                   help="a smoke run: 5,000 runs, 10 days of jobs, 5,000-run RSS job")
    p.add_argument("--runs", type=int, help="runs in the recorded job (default 50,000)")
    p.add_argument("--jobs", type=int, help="hourly jobs in the history (default 8,760)")
    p.add_argument("--per-job", type=int, default=200, help="runs listed per hourly job")
    p.add_argument("--rss-runs", type=int, help="runs in the RSS job (default 50,000; 0: skip)")
    p.add_argument("--no-pg", action="store_true", help="SQLite only")
    p.add_argument("--only", choices=("record", "history", "rss"), action="append",
                   help="run only these parts (repeatable)")
    p.add_argument("--profile", action="store_true", help="cProfile record_job")
    p.add_argument("--repeat", type=int, default=3,
                   help="rounds of each timing; the best is judged, the median shown "
                        "(the machine is shared: the best is the code's cost)")
    p.add_argument("--before", metavar="REV",
                   help="also measure the RSS job on this git revision (e.g. the one before "
                        "the state store, d5fc305) as a baseline")
    p.add_argument("--repo", default=str(ROOT),
                   help="the git repository --before reads (this tree's, by default)")
    args = p.parse_args(argv)
    n = args.runs or (5_000 if args.quick else 50_000)
    shape = YearShape(args.jobs or (240 if args.quick else 8_760), args.per_job)
    rss_runs = args.rss_runs if args.rss_runs is not None else (5_000 if args.quick else 50_000)
    parts = set(args.only or ("record", "history", "rss"))
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {machine()}")
    settings = settings_for_bench()
    pacing = load_pacing_bench()
    checks: list[Check] = []
    with tempfile.TemporaryDirectory(prefix="reaper-state-bench-") as tmpdir:
        tmp = Path(tmpdir)
        with backends(tmp, not args.no_pg) as found:
            if "rss" in parts and rss_runs:  # first, while this process is small
                bench_rss(pacing, found, rss_runs, checks, tmp, args.before, args.repo)
            if "record" in parts:
                for backend in found:
                    bench_record(backend, settings, n, args.profile, checks, args.repeat)
            if "history" in parts:
                for backend in found:
                    bench_history(backend, settings, shape, pacing, checks, n, tmp, args.repeat)
    print_checks(checks)


if __name__ == "__main__":
    main()
