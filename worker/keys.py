"""The table of every config key: TOML location, flag, environment variable, kind, default.

It holds the one default of every knob: the settings dataclasses (``worker.config``) and the
classes that take a knob (``PacerConfig``, ``RetryPolicy``...) read theirs with
:func:`default_of`. One table drives argparse (``worker.cli``), the environment, the config
file, precedence and ``zuora-reaper explain``, so a key is declared exactly once. Secrets are
not keys: they come only from the environment (``worker.secrets``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from worker.models import IN_PROGRESS

ENV_PREFIX = "ZUORA_REAPER_"


@dataclass(frozen=True, slots=True)
class Key:
    """One config key. ``name`` is ``section.field`` as written in the TOML file."""

    name: str
    kind: str  # str | int | float | bool | duration | list | choice
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    flag: str | None = None  # defaults to --<field with dashes>; "" means no flag
    repeat_flag: str | None = None  # the singular flag of a list key, e.g. --status
    env_name: str | None = None  # defaults to ZUORA_REAPER_<FIELD>

    @property
    def field(self) -> str:
        return self.name.split(".", 1)[1]

    @property
    def section(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def env(self) -> str:
        """ZUORA_REAPER_<FIELD>; exclusions get EXCLUDE_ so they never share a filter's name."""
        if self.env_name:
            return self.env_name
        prefix = ENV_PREFIX + "EXCLUDE_" if self.section == "exclude" else ENV_PREFIX
        return prefix + self.field.upper()

    @property
    def cli_flag(self) -> str | None:
        if self.flag == "":
            return None
        if self.repeat_flag:
            return self.repeat_flag
        return self.flag or "--" + self.field.replace("_", "-")


KEYS: tuple[Key, ...] = (
    Key("target.base_url", "str", None, "API host root, scheme://host[:port], no path"),
    Key("target.environment", "str", None, "Zuora environment name (see README)"),
    Key("target.auth", "choice", "oauth", "authentication mode", ("oauth", "legacy")),
    Key("target.proxy", "str", None,
        "forward proxy for every call, http(s)://host:port, or none to go direct; unset, "
        "HTTPS_PROXY / HTTP_PROXY / NO_PROXY decide"),
    Key("target.ca_file", "str", None,
        "PEM bundle of CA certificates to trust besides the system store"),
    Key("filters.older_than", "duration", None,
        "select runs started at least this long ago; STATUS=DURATION sets one status"),
    Key("filters.idle_for", "duration", None, "select runs whose updatedOn is at least this old"),
    Key("filters.stalled_for", "duration", None,
        "select runs whose status and updatedOn have not changed for this long, across jobs "
        "(needs the state store; a run seen for the first time is never stalled)"),
    Key("filters.statuses", "list", list(IN_PROGRESS), "statuses to select",
        IN_PROGRESS, repeat_flag="--status"),
    Key("filters.report_types", "list", [], "report types to select",
        repeat_flag="--report-type"),
    Key("filters.created_by", "list", [], "owners (usernames) to select",
        repeat_flag="--created-by"),
    Key("filters.report_ids", "list", [], "report ids (or run ids) to select",
        repeat_flag="--report-id"),
    Key("exclude.report_types", "list", [], "report types never cancelled",
        repeat_flag="--exclude-report-type"),
    Key("exclude.created_by", "list", [], "owners whose runs are never cancelled",
        repeat_flag="--exclude-created-by"),
    Key("exclude.report_ids", "list", [], "report ids never cancelled",
        repeat_flag="--exclude-report-id"),
    Key("safety.max_cancel", "int", 100, "refuse to cancel anything when more runs match"),
    Key("safety.min_age", "duration", 300.0, "age floor no run younger than is cancelled"),
    Key("safety.allow_young", "bool", False, "lift the age floor"),
    Key("safety.notice", "duration", None,
        "warn before cancelling: a run that would be cancelled gets a notice (webhook, "
        "state) instead; only a job starting this long after the notice cancels it"),
    Key("pacing.rate", "float", 10.0, "upper bound on requests per second"),
    Key("pacing.concurrency", "int", 8, "upper bound on requests in flight"),
    Key("pacing.quota_share", "float", 0.5,
        "share of each announced quota window this job may use (pace and budgets)"),
    Key("pacing.deadline", "duration", None, "whole-job deadline; then stop and report (exit 5)"),
    Key("pacing.max_attempts", "int", 6, "attempts per request for transient failures"),
    Key("pacing.attempt_timeout", "duration", 60.0, "timeout of one HTTP attempt"),
    Key("pacing.retry_budget", "int", 500, "job-level retry tokens (retry 10, throttle 2)"),
    Key("listing.page_size", "int", 250, "runs per listing page (1-250, as Zuora documents)"),
    Key("listing.max_pages", "int", 1000, "page cap per listing pass; exceeding it is an error"),
    Key("listing.list_items_field", "str", None, "field of 'response' holding the runs"),
    Key("listing.max_passes", "int", 3, "list-and-cancel passes until nothing new is selected"),
    Key("output.report_file", "str", None, "write the JSON report here (atomically)"),
    Key("output.output", "choice", "text", "stdout format of the result", ("text", "json")),
    Key("output.log_format", "choice", "auto", "log format", ("auto", "json", "console")),
    Key("output.log_level", "choice", "info", "log level",
        ("debug", "info", "warning", "error")),
    Key("output.progress", "choice", "auto", "live progress line on stderr",
        ("auto", "always", "never")),
    Key("output.metrics_file", "str", None, "Prometheus textfile-collector file"),
    Key("output.pushgateway", "str", None, "Prometheus Pushgateway URL"),
    Key("output.notify_webhook", "str", None, "POST the job summary JSON here"),
    Key("output.job_name", "str", "zuora-reaper", "job label for metrics and notifications"),
    Key("state.url", "str", None,
        "the state store: a SQLite path (or sqlite:///PATH) or a postgresql:// URL; unset, "
        "a SQLite file in the user's state directory; none runs without memory",
        flag="--state", env_name="ZUORA_REAPER_STATE"),
    Key("state.keep", "duration", 400 * 86400.0,
        "sightings, jobs and expired spares older than this are pruned by the job that writes"),
    Key("run.lock_file", "str", None, "lock file; unset, one per target in a private folder"),
    Key("run.ids_file", "str", None, "cancel these run ids (one per line, - for stdin)"),
    Key("run.plan", "str", None, "run: cancel only runs in this plan file"),
    Key("run.plan_out", "str", None, "plan: write the selection to this plan file"),
    Key("run.capture", "str", None,
        "check: write the shape of the API's answers (field names and types, never values) "
        "to this file"),
    Key("run.plan_max_age", "duration", 3600.0, "refuse plans older than this"),
    Key("run.yes", "bool", False, "run: cancel without asking (on a terminal, run shows the "
        "selection and asks first)"),
)

KEYS_BY_NAME = {key.name: key for key in KEYS}
SECTIONS = tuple(dict.fromkeys(key.section for key in KEYS))


def default_of(name: str) -> Any:
    """The default of key ``name`` (``section.field``), as declared in ``KEYS``."""
    default = KEYS_BY_NAME[name].default
    return tuple(default) if isinstance(default, list) else default
