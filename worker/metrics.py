"""Prometheus metrics of one batch job: a textfile-collector file and a Pushgateway push.

Every value describes the last run (gauges, the batch-job convention), labelled with ``target``
(the base URL), ``target_id`` (the target's identity: base URL, principal and entity, so two
tenants on one host never share a series or a Pushgateway group) and ``job_name``.
``zuora_reaper_last_success_timestamp_seconds`` is set only on exit 0; after a
failed run it keeps its previous value (read back from the old file, or left in place on the
Pushgateway by pushing with POST without it), so "no success in 26h" alerts keep working.
"""

from __future__ import annotations

import threading
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import structlog
from prometheus_client import CollectorRegistry, Gauge, push_to_gateway, pushadd_to_gateway
from prometheus_client.exposition import write_to_textfile
from prometheus_client.parser import text_string_to_metric_families

from worker import __version__
from worker.config import Settings
from worker.files import refuse_non_regular
from worker.logs import hide_url
from worker.models import JobResult, Outcome, RunRecord
from worker.network import Network
from worker.report import counts

log = structlog.get_logger("worker.metrics")

PREFIX = "zuora_reaper_"
LAST_SUCCESS = PREFIX + "last_success_timestamp_seconds"
PUSH_TIMEOUT_S = 10.0
STATUS_CLASSES = ("2xx", "4xx", "5xx")
LIMIT_KINDS = ("rate", "concurrency")
TOP_REPORT_TYPES = 20
OTHER = "other"


@dataclass(frozen=True, slots=True)
class Sample:
    """What the metrics are made of, taken once from the finished job."""

    labels: dict[str, str]
    exit_code: int
    dry_run: bool
    finished: datetime
    duration_s: float
    result: JobResult
    stalled_for: float | None = None  # --stalled-for: what "stalled" means in the metrics


def sample_of(settings: Settings, result: JobResult, exit_code: int) -> Sample:
    """Freeze the values to publish (the finish time defaults to now for an aborted job)."""
    finished = result.finished_at or datetime.now(UTC)
    return Sample(labels={"target": settings.target.base_url,
                          "target_id": settings.identity.key,
                          "job_name": settings.output.job_name},
                  exit_code=exit_code, dry_run=settings.dry_run, finished=finished,
                  duration_s=max(0.0, (finished - result.started_at).total_seconds()),
                  result=result, stalled_for=settings.selection.stalled_for)


def stamp(moment: datetime) -> float:
    """Unix seconds with the report's millisecond precision, so both carry the same instant."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000).timestamp()


def build_registry(sample: Sample, last_success: float | None,
                   push: bool = False) -> CollectorRegistry:
    """A registry with every metric of the run; ``last_success`` None leaves that one out.

    ``push``: for the Pushgateway, whose grouping key already holds ``job=<job_name>``, so the
    ``job_name`` label is left out (the textfile keeps it: there, nothing else tells two jobs
    on one node apart)."""
    reg = CollectorRegistry(auto_describe=True)
    labels = {k: v for k, v in sample.labels.items() if not (push and k == "job_name")}
    made: dict[str, Gauge] = {}

    def gauge(name: str, doc: str, value: float, **extra: str) -> None:
        if name not in made:
            made[name] = Gauge(PREFIX + name, doc, (*labels, *extra), registry=reg)
        made[name].labels(**labels, **extra).set(value)

    if last_success is not None:
        gauge("last_success_timestamp_seconds", "End of the last run that exited 0.",
              last_success)
    gauge("build_info", "The zuora-reaper that ran the last run (always 1).", 1,
          version=__version__)
    _job_gauges(gauge, sample)
    _run_gauges(gauge, sample.result)
    _by_report_type(gauge, sample.result)
    _memory_gauges(gauge, sample)
    return reg


def _job_gauges(gauge: Callable[..., None], sample: Sample) -> None:
    gauge("last_run_timestamp_seconds", "End of the last run, whatever its exit code.",
          stamp(sample.finished))
    gauge("last_run_duration_seconds", "Wall time of the last run.", sample.duration_s)
    gauge("last_run_exit_code", "Exit code of the last run (0 ok, see README).", sample.exit_code)
    gauge("last_run_dry_run", "1 when the last run was a plan (nothing cancelled).",
          int(sample.dry_run))
    for phase, seconds in sample.result.phase_seconds.items():
        gauge("last_run_phase_duration_seconds", "Wall time of the last run by phase "
              "(listing: every listing pass or --ids-file fetch; cancelling: every DELETE).",
              seconds, phase=phase)


def _run_gauges(gauge: Callable[..., None], result: JobResult) -> None:
    c, counters = counts(result), result.counters
    gauge("last_run_runs_listed", "In-progress runs listed by the last run.", c["listed"])
    gauge("last_run_runs_selected", "Runs selected for cancelling by the last run.",
          c["selected"])
    for outcome in Outcome:
        gauge("last_run_cancels", "Selected runs of the last run by outcome.",
              c[outcome.value], outcome=outcome.value)
    for cls in sorted({*STATUS_CLASSES, *counters.by_class}):
        gauge("last_run_requests", "API responses of the last run by status class.",
              counters.by_class.get(cls, 0), status_class=cls)
    for kind in LIMIT_KINDS:
        gauge("last_run_rate_limited", "HTTP 429 answers of the last run by kind.",
              counters.limited.get(kind, 0), kind=kind)
    gauge("last_run_retries", "Retries scheduled by the last run.", counters.retries)
    gauge("last_run_network_errors", "Attempts that got no HTTP answer.",
          counters.network_errors)
    gauge("last_run_token_requests", "OAuth token requests of the last run.",
          result.token_requests)


def _by_report_type(gauge: Callable[..., None], result: JobResult) -> None:
    """Selected runs by report type and outcome: the ``TOP_REPORT_TYPES`` types with the most
    selected runs by name, the rest summed as ``other`` (a bounded label set)."""
    pairs = [(r.run.report_type or "unknown", str(r.outcome)) for r in result.records.values()
             if r.selected and r.outcome is not None]
    sizes = Counter(name for name, _ in pairs)
    top = {name for name, _ in sizes.most_common(TOP_REPORT_TYPES)}
    cells = Counter((name if name in top else OTHER, outcome) for name, outcome in pairs)
    for (name, outcome), count in sorted(cells.items()):
        gauge("last_run_cancels_by_report_type", "Selected runs of the last run by report "
              f"type (the {TOP_REPORT_TYPES} largest; the rest as other) and outcome.",
              count, report_type=name, outcome=outcome)


DONE = frozenset({Outcome.CANCELLED, Outcome.ALREADY_CANCELLED, Outcome.ALREADY_FINISHED,
                  Outcome.NOT_FOUND})  # a run this job ended (or found ended): no longer stuck
MEMORY_KINDS: dict[str, tuple[str, Callable[[RunRecord, float], bool]]] = {
    "noticed": ("given a notice instead of a cancel (--notice)",
                lambda r, _: r.outcome is Outcome.NOTICED),
    "spared": ("left alone by a spare in force", lambda r, _: r.reason == "spared"),
    "stalled": ("left in progress (not cancelled) with status and updatedOn unchanged across "
                "jobs for at least --stalled-for (without it: since an earlier job)",
                lambda r, least: r.outcome not in DONE and r.unchanged_s is not None
                and r.unchanged_s >= max(least, 1e-9)),
}


def _memory_gauges(gauge: Callable[..., None], sample: Sample) -> None:
    """Runs noticed, spared and stalled in the last run, by report type (the largest
    ``TOP_REPORT_TYPES``, the rest as other; ``report_type="none"`` is 0 when there were
    none, so a sum over a target is never empty). Never a run id or an owner."""
    least = sample.stalled_for or 0.0
    for kind, (doc, test) in MEMORY_KINDS.items():
        names = Counter(r.run.report_type or "unknown" for r in sample.result.records.values()
                        if test(r, least))
        top = {name for name, _ in names.most_common(TOP_REPORT_TYPES)}
        cells = Counter({OTHER if name not in top else name: 0 for name in names})
        for name, count in names.items():
            cells[name if name in top else OTHER] += count
        for name, count in sorted((cells or Counter({"none": 0})).items()):
            gauge(f"last_run_runs_{kind}", f"Runs of the last run {doc}, by report type.",
                  count, report_type=name)


def previous_success(path: str, labels: dict[str, str]) -> float | None:
    """The last-success value of these labels in an existing metrics file, if any."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("metrics.read_failed", path=path, error=str(exc))
        return None
    try:
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name == LAST_SUCCESS and all(s.labels.get(k) == v
                                                  for k, v in labels.items()):
                    return float(s.value)
    except ValueError as exc:
        log.warning("metrics.unparseable_previous_file", path=path, error=str(exc))
    return None


def write_metrics_file(path: str, sample: Sample) -> None:
    """Write the textfile atomically (temp file + rename, readable by node_exporter)."""
    last = stamp(sample.finished) if sample.exit_code == 0 else \
        previous_success(path, sample.labels)
    refuse_non_regular(path)
    # prometheus_client's writer renames a temp file into place; unlike mkstemp it leaves the
    # file with umask permissions, so a node_exporter running as another user can read it.
    write_to_textfile(path, build_registry(sample, last))
    log.info("metrics.written", path=path, last_success=last)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects are never followed (as on every other call): a 3xx becomes an HTTPError."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def push_handler(network: Network) -> Callable[..., Callable[[], None]]:
    """A prometheus_client push handler that sends through the job's one network policy:
    its proxy (or none) for the gateway's URL, its trust store, and no redirects."""

    def handler(url: str, method: str, timeout: float | None,
                headers: list[tuple[str, str]], data: bytes) -> Callable[[], None]:
        proxy = network.proxy_for(url)
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({"http": proxy, "https": proxy} if proxy else {}),
            urllib.request.HTTPSHandler(context=network.ssl_context()), _NoRedirect())

        def send() -> None:
            request = urllib.request.Request(url, data=data, method=method)  # noqa: S310
            for name, value in headers:
                request.add_header(name, value)
            with opener.open(request, timeout=timeout) as resp:
                if resp.status >= 400:
                    raise OSError(f"error talking to pushgateway: {resp.status}")

        return send

    return handler


def push_metrics(gateway: str, sample: Sample, timeout: float = PUSH_TIMEOUT_S,
                 network: Network | None = None) -> bool:
    """Push to a Pushgateway in a thread bounded by ``timeout``; False (logged) on failure.

    Exit 0 replaces the group (PUT) with a fresh last-success value; any other exit code adds
    (POST) every metric except last-success, so the gateway keeps the previous one.
    """
    handler = push_handler(network or Network())
    ok = sample.exit_code == 0
    registry = build_registry(sample, stamp(sample.finished) if ok else None, push=True)
    sender = push_to_gateway if ok else pushadd_to_gateway
    job = sample.labels["job_name"]
    key = {k: v for k, v in sample.labels.items() if k != "job_name"}  # one group per tenant
    errors: list[str] = []

    def push() -> None:
        try:
            sender(gateway, job=job, registry=registry, grouping_key=key, timeout=timeout,
                   handler=handler)
        except Exception as exc:  # urllib raises many kinds; each means "not pushed"
            errors.append(f"{type(exc).__name__}: {exc}")
            closer = getattr(exc, "close", None)  # urllib's HTTPError holds the socket open
            if callable(closer):
                closer()

    thread = threading.Thread(target=push, name="pushgateway", daemon=True)
    thread.start()
    thread.join(timeout + 1.0)
    where = hide_url(gateway)
    if thread.is_alive() or errors:
        reason = errors[0] if errors else f"no answer within {timeout:g}s"
        log.warning("metrics.push_failed", gateway=where, error=reason[:300])
        return False
    log.info("metrics.pushed", gateway=where, method="PUT" if ok else "POST")
    return True

