"""Emulator configuration: every knob, with the demo credentials as defaults."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from worker.ratelimit import TENANTS

DEMO_CLIENT_ID = "demo-client-id-0000-0000-0000-000000"
DEMO_CLIENT_SECRET = "demo-secret"  # noqa: S105 - public demo credential
DEMO_USERNAME = "demo-user"
DEMO_PASSWORD = "demo-password"  # noqa: S105 - public demo credential

LIST_SHAPES = ("list", "content")
TIME_FORMATS = ("epoch_ms", "iso")
USER_FIELDS = ("nested", "dotted", "none")  # none: the listing carries no owner
# What a listing does with columns the docs do not show (zuora-api.md §6.4: reportId,
# startedOn, reportType, createdByUserProfile.username, status; items carry ``id``): answer
# every field anyway, drop the others from its items, or refuse the request (400).
COLUMN_MODES = ("any", "drop", "refuse")
DOCUMENTED_COLUMNS = ("reportId", "startedOn", "reportType", "createdByUserProfile.username",
                      "status")
LIST_FAULTS = ("html", "text", "no_list", "truncated", "huge", "tiny_items")
CANCEL_THEN = ("stall", "drop", "504")  # what follows an applied DELETE (see cancel_then)
GARBLED_ANSWERS = ("html", "truncated", "empty", "list", "no_success", "success_text")
LIMITERS = ("window", "bucket", "zuora")  # see worker.emulator.limits
# What one DELETE of a run meets (cancel_script): "ok" as usual; "lost_504" / "lost_drop" /
# "lost_stall" apply the cancel and lose its answer (a gateway's 504, a dropped connection, an
# answer after cancel_stall_s); "503", "reset" and "timeout" (no answer within cancel_stall_s)
# do not apply it; "refuse" answers 400 while the run goes on, "forbid" 403; "finish" and
# "other_cancel" first finish the run, or cancel it as another user, then answer as usual.
CANCEL_STEPS = ("ok", "lost_504", "lost_drop", "lost_stall", "503", "reset", "timeout",
                "refuse", "forbid", "finish", "other_cancel")
REQUEST_KINDS = ("token", "list", "get", "delete")
REMOVE = "<remove>"  # in item_patch: drop this field from the listed item


@dataclass
class EmulatorConfig:
    """Knobs of the emulator. Mutable: handlers read it on every request."""

    runs: int = 200
    seed: int = 1
    runs_file: str | None = None
    in_progress_share: float = 0.7
    list_shape: str = "content"
    time_format: str = "epoch_ms"
    user_field: str = "nested"
    include_updated_on: bool = True
    # Zuora's own documented variants (its OpenAPI file contradicts its example):
    get_envelope: bool = True  # False: a GET answers the run object alone, no {success,...}
    status_case: str = "upper"  # "lower": status values as the OpenAPI file spells them
    report_id_field: str = "reportId"  # or "reportID", as the OpenAPI schema spells it
    page_cap: int = 250
    # Paging as the docs allow (they say nothing of it): pageSize ignored (every page holds
    # ``page_size_fixed``), a page past the end answered with the last page again, totals
    # (totalPages, totalElements) left out of the "content" shape.
    page_size_fixed: int | None = None
    clamp_pages: bool = False
    list_totals: bool = True
    columns: str = "any"
    get_owner: bool = True  # False: a GET answers without createdByUserProfile, as documented
    token_ttl: float = 3600.0
    # The rate limit (worker.emulator.limits): ``rate`` requests/s, counted by ``limiter``:
    # fixed windows of ``rate_window`` s, or a leaky bucket admitting ``burst`` over its rate.
    rate: float | None = None
    rate_window: float = 60.0
    limiter: str = "window"
    burst: int = 5
    # zuora: every window of a tenant type (worker.ratelimit.TENANTS) counted at once, with
    # Zuora's lower-case multi-window headers; ``windows_used`` pre-spends a window (seconds ->
    # requests already counted in it, by other clients).
    tenant: str = "api-sandbox"
    windows_used: dict[float, int] = field(default_factory=dict)
    rate_headers: bool = True  # window: RateLimit-* on every API answer
    rate_retry_after: bool = True  # window: Retry-After on a refusal
    placeholder_headers: bool = False  # RateLimit-Limit: unlimited, -Remaining: 0, -Reset: 0
    concurrency: int | None = None
    concurrency_retry_after: float = 120.0
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    fail_503_ratio: float = 0.0
    fault_retry_after: float = 0.0
    drop_ratio: float = 0.0
    poison_ids: set[str] = field(default_factory=set)  # these answer 500 to DELETE (and GET)
    poison_get: bool = True  # False: poison ids answer GETs normally (only DELETE fails)
    forbid_cancel: bool = False
    refusal_status: int = 400
    # An applied DELETE whose answer never arrives: "stall" answers after cancel_stall_s (past
    # the client's attempt timeout), "drop" closes the connection, "504" answers a gateway's
    # timeout page. The cancel itself is applied first, as a gateway in front of Zuora shows.
    cancel_then: str | None = None
    cancel_stall_s: float = 30.0
    # Per run id, one CANCEL_STEPS entry per DELETE of that run, in order; "ok" after the last.
    cancel_script: dict[str, list[str]] = field(default_factory=dict)
    # Per request kind (REQUEST_KINDS), seconds to hold every such request before answering it.
    stall: dict[str, float] = field(default_factory=dict)
    list_fault: str | None = None
    # Per run id, what its listed item looks like instead: ``item_patch`` sets fields on it
    # (``REMOVE`` drops one), ``item_replace`` serves this JSON value as the whole item.
    item_patch: dict[str, dict[str, object]] = field(default_factory=dict)
    item_replace: dict[str, object] = field(default_factory=dict)
    # Per run id, a garbled answer to its DELETE (one of GARBLED_ANSWERS); "cancel+<kind>"
    # cancels the run first, as a gateway that mangles the real answer would show.
    garble_cancel: dict[str, str] = field(default_factory=dict)
    # The token endpoint refuses with this status, echoing the client secret it was sent.
    token_echo_status: int | None = None
    # Called after every listing page is answered, with the number answered so far: another
    # user acting between a job's listing and its cancels.
    after_list: Callable[[int], None] | None = None
    drift_complete: int = 0
    drift_start: int = 0
    entity_id: str | None = None
    client_id: str = DEMO_CLIENT_ID
    client_secret: str = DEMO_CLIENT_SECRET
    username: str = DEMO_USERNAME
    password: str = DEMO_PASSWORD
    clock: Callable[[], float] = field(default=time.time)
    date_skew_s: float = 0.0  # added to the Date header only (a proxy or edge writing it)

    def validate(self) -> None:
        """Raise ValueError on an option value the emulator does not know."""
        _choice("list_shape", self.list_shape, LIST_SHAPES)
        _choice("time_format", self.time_format, TIME_FORMATS)
        _choice("user_field", self.user_field, USER_FIELDS)
        _choice("columns", self.columns, COLUMN_MODES)
        _choice("status_case", self.status_case, ("upper", "lower"))
        _choice("report_id_field", self.report_id_field, ("reportId", "reportID"))
        _choice("limiter", self.limiter, LIMITERS)
        _choice("tenant", self.tenant, tuple(TENANTS))
        if self.list_fault is not None:
            _choice("list_fault", self.list_fault, LIST_FAULTS)
        if self.cancel_then is not None:
            _choice("cancel_then", self.cancel_then, CANCEL_THEN)
        for steps in self.cancel_script.values():
            for step in steps:
                _choice("cancel_script", step, CANCEL_STEPS)
        for kind in self.stall:
            _choice("stall", kind, REQUEST_KINDS)
        for kind in self.garble_cancel.values():
            _choice("garble_cancel", kind.removeprefix("cancel+"), GARBLED_ANSWERS)
        if self.runs < 0 or self.page_cap < 1 or (self.page_size_fixed or 1) < 1:
            raise ValueError("runs must be >= 0, page_cap and page_size_fixed >= 1")
        if not 0.0 <= self.in_progress_share <= 1.0:
            raise ValueError("in_progress_share must be within [0, 1]")
        if self.rate is not None and (self.rate <= 0 or self.rate_window <= 0):
            raise ValueError("rate and rate_window must be > 0")
        if self.burst < 0:
            raise ValueError("burst must be >= 0")
        if self.concurrency is not None and self.concurrency < 1:
            raise ValueError("concurrency must be >= 1")


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
