"""Settings: frozen dataclasses built from flags, environment, config file and defaults.

Precedence is flag > environment > config file > default, key by key (``worker.keys``).
Everything is validated here, before any network call; errors name the key and what is allowed.
"""

from __future__ import annotations

import hashlib
import ipaddress
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from worker import environments
from worker.durations import format_duration, parse_duration
from worker.errors import ConfigError
from worker.files import CONFIG_CAP, check_output_folder, check_output_path, read_capped
from worker.keys import KEYS, KEYS_BY_NAME, SECTIONS, Key, default_of
from worker.models import IN_PROGRESS
from worker.network import Network, network_from
from worker.secrets import Credentials, load_credentials
from worker.state.location import resolve

SOURCE_RANK = {"default": 0, "file": 1, "env": 2, "flag": 3}
RULE_FIELDS = ("older_than", "older_than_by_status", "idle_for", "statuses", "report_types",
               "created_by", "report_ids")
BY_STATUS = "filters.older_than_by_status"
BY_STATUS_ENV = "ZUORA_REAPER_OLDER_THAN_BY_STATUS"


@dataclass(frozen=True, slots=True)
class Filters:
    """Inclusion filters, combined with AND. Empty tuples mean "any"."""

    older_than: float | None = None
    older_than_by_status: tuple[tuple[str, float], ...] = ()
    idle_for: float | None = None
    statuses: tuple[str, ...] = default_of("filters.statuses")
    report_types: tuple[str, ...] = ()
    created_by: tuple[str, ...] = ()
    report_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Rule:
    """A named set of filters from ``[[rules]]``; a run is selected when any rule matches."""

    name: str
    filters: Filters


@dataclass(frozen=True, slots=True)
class Exclusions:
    """Runs never cancelled, whatever else matches."""

    report_types: tuple[str, ...] = ()
    created_by: tuple[str, ...] = ()
    report_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Selection:
    """Everything that decides which runs are cancelled."""

    filters: Filters = Filters()
    rules: tuple[Rule, ...] = ()
    exclude: Exclusions = Exclusions()
    min_age: float = default_of("safety.min_age")  # 0 when --allow-young
    stalled_for: float | None = None  # across jobs, from the state store (worker.memory)
    notice: float | None = None  # warn first; cancel only this long after the notice


@dataclass(frozen=True, slots=True)
class Target:
    """Where the job points: host root, environment name and auth mode."""

    base_url: str
    environment: str | None
    auth: str

    @property
    def api_root(self) -> str:
        suffix = "/reporting/api/rest/v1" if self.auth == "oauth" else "/api/rest/v1"
        return self.base_url + suffix

    @property
    def token_url(self) -> str:
        return self.base_url + "/oauth/token"


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a job acts as, where: many tenants share one host (every US production tenant is
    https://rest.zuora.com), so a target is its base URL, auth mode, principal (the OAuth
    client id or the user name) and entity. The principal is shown only as a fingerprint;
    no secret is part of it. ``key`` names the target in the lock, the plan and the metrics."""

    base_url: str
    auth: str
    principal: str  # "sha256:" and 12 hex digits of the client id or user name
    entity_id: str | None

    @classmethod
    def of(cls, target: Target, credentials: Credentials) -> Identity:
        who = credentials.client_id if target.auth == "oauth" else credentials.username
        digest = hashlib.sha256((who or "").encode()).hexdigest()[:12]
        entity = credentials.entity_id.lower() if credentials.entity_id else None  # a UUID
        return cls(target.base_url, target.auth, f"sha256:{digest}", entity)

    @property
    def key(self) -> str:
        """16 hex digits, the same for the same target wherever it is computed."""
        parts = (self.base_url, self.auth, self.principal, self.entity_id or "")
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]

    def describe(self) -> str:
        """One line for messages: the host, the principal's fingerprint and the entity."""
        entity = f", entity {self.entity_id}" if self.entity_id else ""
        who = "client" if self.auth == "oauth" else "user"
        return f"{self.base_url} ({who} {self.principal}{entity})"


@dataclass(frozen=True, slots=True)
class Pacing:
    rate: float = default_of("pacing.rate")
    concurrency: int = default_of("pacing.concurrency")
    quota_share: float = default_of("pacing.quota_share")
    deadline: float | None = None
    max_attempts: int = default_of("pacing.max_attempts")
    attempt_timeout: float = default_of("pacing.attempt_timeout")
    retry_budget: int = default_of("pacing.retry_budget")


@dataclass(frozen=True, slots=True)
class Listing:
    page_size: int = default_of("listing.page_size")
    max_pages: int = default_of("listing.max_pages")
    list_items_field: str | None = None
    max_passes: int = default_of("listing.max_passes")


@dataclass(frozen=True, slots=True)
class Output:
    report_file: str | None = None
    output: str = default_of("output.output")
    log_format: str = default_of("output.log_format")
    log_level: str = default_of("output.log_level")
    progress: str = default_of("output.progress")
    metrics_file: str | None = None
    pushgateway: str | None = None
    notify_webhook: str | None = None
    job_name: str = default_of("output.job_name")


@dataclass(frozen=True, slots=True)
class RunOptions:
    lock_file: str | None = None
    ids_file: str | None = None
    plan: str | None = None
    plan_out: str | None = None
    capture: str | None = None
    plan_max_age: float = default_of("run.plan_max_age")
    yes: bool = default_of("run.yes")


@dataclass(frozen=True, slots=True)
class StateOptions:
    """Where the memory across jobs lives (``worker.state``), and how long it is kept."""

    url: str | None = None  # None: the default SQLite file; "none": no memory
    keep: float = default_of("state.keep")


@dataclass(frozen=True, slots=True)
class Settings:
    """The one config object passed through the job."""

    command: str
    target: Target
    credentials: Credentials
    selection: Selection
    max_cancel: int
    pacing: Pacing
    listing: Listing
    output: Output
    run: RunOptions
    network: Network = field(default_factory=Network)
    state: StateOptions = field(default_factory=StateOptions)
    values: Mapping[str, Any] = field(default_factory=dict, repr=False)
    sources: Mapping[str, str] = field(default_factory=dict, repr=False)
    # a command's own arguments that are no config key (spare's run ids, history's --since)
    args: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def dry_run(self) -> bool:
        return self.command != "run"

    @property
    def identity(self) -> Identity:
        return Identity.of(self.target, self.credentials)


# ---------------------------------------------------------------- loading and layering


def read_config_file(path: str | None) -> dict[str, Any]:
    """Parse the TOML file; unknown sections or keys are errors naming what is allowed."""
    if path is None:
        return {}
    text = read_capped("--config", path, CONFIG_CAP, "config file")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("--config", f"{path} is not valid TOML: {exc}") from exc
    allowed = (*SECTIONS, "rules")
    for section, body in data.items():
        if section not in allowed:
            raise ConfigError(section, f"unknown section in {path}; allowed: {', '.join(allowed)}")
        if section != "rules" and not isinstance(body, dict):
            raise ConfigError(section, "must be a table, e.g. [" + section + "]")
        if section != "rules":
            _check_keys(section, body)
    return data


def _check_keys(section: str, body: Mapping[str, Any]) -> None:
    known = [k.field for k in KEYS if k.section == section]
    if section == "filters":
        known.append("older_than_by_status")
    for name in body:
        if name not in known:
            raise ConfigError(f"{section}.{name}", f"unknown key; allowed: {', '.join(known)}")


def layer(flags: Mapping[str, Any], env: Mapping[str, str],
          file_data: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Pick each key's raw value and its source by precedence flag > env > file > default."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for key in KEYS:
        values[key.name], sources[key.name] = key.default, "default"
        section = file_data.get(key.section, {})
        if key.field in section:
            values[key.name], sources[key.name] = section[key.field], "file"
        if env.get(key.env, "").strip():
            values[key.name], sources[key.name] = env[key.env], "env"
        if flags.get(key.name) is not None:
            values[key.name], sources[key.name] = flags[key.name], "flag"
    values[BY_STATUS], sources[BY_STATUS] = _layer_by_status(flags, env, file_data)
    return values, sources


def _layer_by_status(flags: Mapping[str, Any], env: Mapping[str, str],
                     file_data: Mapping[str, Any]) -> tuple[Any, str]:
    """Per-status thresholds, merged status by status: file < env < flag.

    A flag for STARTED must not drop the file's PROCESSINGDATA = "6h". The environment form is
    ``ZUORA_REAPER_OLDER_THAN_BY_STATUS="STARTED=20m,QUERYDATA=2h"``.
    """
    merged: Any = {}
    source = "default"
    layers = [("file", file_data.get("filters", {}).get("older_than_by_status")),
              ("env", _env_table(env.get(BY_STATUS_ENV, ""))),
              ("flag", flags.get(BY_STATUS))]
    for name, table in layers:
        if not table:
            continue
        if isinstance(table, Mapping) and isinstance(merged, Mapping):
            merged = {str(k).upper(): v for k, v in merged.items()}
            merged.update({str(k).upper(): v for k, v in table.items()})
        else:
            merged = table  # not a table: _by_status names the error
        source = name
    return merged, source


OLDER_THAN_ENV = "ZUORA_REAPER_OLDER_THAN"


def _older_than_by_status(env: Mapping[str, str], file_data: Mapping[str, Any]
                          ) -> tuple[Mapping[str, str], Mapping[str, Any]]:
    """``older_than`` means the same from every source: as the repeatable flag, the variable
    (``ZUORA_REAPER_OLDER_THAN="2h,STARTED=20m"``) and the file (``older_than = "2h"`` or
    ``["2h", "STARTED=20m"]``) take plain durations and ``STATUS=DURATION`` items; the latter
    join that source's per-status table (its own entries win)."""
    text = env.get(OLDER_THAN_ENV, "")
    if "=" in text:
        plain, table = split_by_status(p.strip() for p in text.split(",") if p.strip())
        own = _env_table(env.get(BY_STATUS_ENV, ""))
        env = {**env, OLDER_THAN_ENV: plain[-1] if plain else "",
               BY_STATUS_ENV: ",".join(f"{k}={v}" for k, v in {**table, **own}.items())}
    filters = file_data.get("filters")
    value = filters.get("older_than") if isinstance(filters, Mapping) else None
    items = [value] if isinstance(value, str) else value
    if isinstance(filters, Mapping) and isinstance(items, list) \
            and all(isinstance(i, str) for i in items) and (len(items) != 1 or "=" in items[0]):
        plain, table = split_by_status(items)
        given = filters.get("older_than_by_status")
        merged: Any = {**table, **given} if isinstance(given, Mapping) else (given or table)
        rest = {k: v for k, v in filters.items() if k not in ("older_than", "older_than_by_status")}
        file_data = {**file_data, "filters": {
            **rest, **({"older_than": plain[-1]} if plain else {}),
            **({"older_than_by_status": merged} if merged else {})}}
    return env, file_data


def split_by_status(items: Iterable[str]) -> tuple[list[str], dict[str, str]]:
    """The one ``STATUS=DURATION`` parser (flags and environment): (plain items, the table)."""
    plain: list[str] = []
    table: dict[str, str] = {}
    for item in items:
        status, sep, duration = item.partition("=")
        if sep:
            table[status.strip()] = duration.strip()
        else:
            plain.append(item)
    return plain, table


def _env_table(text: str) -> dict[str, str]:
    plain, table = split_by_status(filter(None, (part.strip() for part in text.split(","))))
    if plain:
        raise ConfigError(BY_STATUS_ENV, f"{plain[0]!r} is not STATUS=DURATION; use e.g. "
                                         "STARTED=20m,QUERYDATA=2h")
    return table


def coerce(key: Key, raw: Any) -> Any:
    """Turn a raw value (a string from flag/env, or a TOML value) into the key's type."""
    if raw is None:
        return None
    try:
        value = _COERCE[key.kind](raw)
        if key.name == "filters.statuses":
            value = tuple(v.upper() for v in value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(key.name, f"{exc} (flag {key.cli_flag}, env {key.env})") from exc
    if key.choices:
        bad = [v for v in (value if isinstance(value, tuple) else (value,))
               if v not in key.choices]
        if bad:
            raise ConfigError(key.name, f"{bad[0]!r} is not allowed; "
                                        f"allowed: {', '.join(key.choices)} "
                                        f"(flag {key.cli_flag}, env {key.env})")
    return value


FILE_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "str": ((str,), '"text"'), "choice": ((str,), '"text"'), "int": ((int,), "50"),
    "float": ((int, float), "2.5"), "bool": ((bool,), "true"), "duration": ((str,), '"2h"'),
    "list": ((list,), '["a", "b"]'),
}


TOML_NAMES = {str: "string", int: "integer", float: "float", bool: "bool", list: "list",
              dict: "table"}


def check_file_type(key: Key, raw: Any, where: str) -> None:
    """A value from the TOML file is typed as a flag means it: a duration is a string with a
    unit ("2h", not 2: TOML numbers carry no unit), a boolean is true/false (not "yes"), a
    whole number an integer (not "50"). A wrong type names the key, what was found, an example.
    """
    allowed, example = FILE_TYPES[key.kind]
    if isinstance(raw, bool) and bool not in allowed:
        allowed = ()
    if not isinstance(raw, allowed):
        found = TOML_NAMES.get(type(raw), type(raw).__name__)
        article = "an" if found[0] in "aeiou" else "a"
        raise ConfigError(where, f"{raw!r} is {article} {found} in the config file; {key.kind} "
                                 f"values are written like {example}")


def _as_bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"{raw!r} is not a boolean; use true or false")


def _as_list(raw: Any) -> tuple[str, ...]:
    items = raw.split(",") if isinstance(raw, str) else raw
    if not isinstance(items, list | tuple):
        raise ValueError(f"{raw!r} is not a list")
    return tuple(dict.fromkeys(str(item).strip() for item in items if str(item).strip()))


def _as_duration(raw: Any) -> float:
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise ValueError(f"{raw!r} is not a duration")
    value = float(raw) if isinstance(raw, int | float) else parse_duration(raw)
    if value < 0:
        raise ValueError(f"{raw!r} is negative")
    return value


def _as_int(raw: Any) -> int:
    if isinstance(raw, (bool, float)):
        raise ValueError(f"{raw!r} is not a whole number")
    return int(str(raw).strip())


def _as_float(raw: Any) -> float:
    if isinstance(raw, bool):
        raise ValueError(f"{raw!r} is not a number")
    return float(str(raw).strip())


def _as_str(raw: Any) -> str:
    if not isinstance(raw, str):
        raise ValueError(f"{raw!r} is not a string")
    return raw.strip()


_COERCE: dict[str, Any] = {
    "str": _as_str, "choice": lambda raw: _as_str(raw).lower() if raw else raw,
    "int": _as_int, "float": _as_float, "bool": _as_bool, "duration": _as_duration,
    "list": _as_list,
}


# ---------------------------------------------------------------- building Settings


# What each command needs of the credentials: 2 both (it sends requests), 1 the principal
# (``spare`` records under the target's identity), 0 nothing (``history`` reads the state).
CREDENTIALS_NEEDED = {"spare": 1, "history": 0}


def load_settings(command: str, flags: Mapping[str, Any], env: Mapping[str, str],
                  config_path: str | None = None) -> Settings:
    """Build validated Settings; raise ConfigError naming the first bad key."""
    return settings_from(command, flags, env, read_config_file(config_path))


def settings_from(command: str, flags: Mapping[str, Any], env: Mapping[str, str],
                  file_data: Mapping[str, Any]) -> Settings:
    """Build validated Settings from flags, the environment and a parsed config file."""
    env, file_data = _older_than_by_status(env, file_data)
    raw, sources = layer(flags, env, file_data)
    for name, source in sources.items():
        if source == "file" and name in KEYS_BY_NAME:
            check_file_type(KEYS_BY_NAME[name], raw[name], name)
    values = {name: coerce(KEYS_BY_NAME[name], raw[name]) for name in KEYS_BY_NAME}
    values[BY_STATUS] = _by_status(BY_STATUS, raw[BY_STATUS])
    _validate_ranges(values)
    _validate_outputs(values)
    _validate_state(values, sources, env)
    target = _target(values, sources, optional=command == "history")
    rules = _rules(file_data.get("rules", []))
    selection = Selection(
        filters=_filters(values, "filters."),
        rules=rules,
        exclude=Exclusions(values["exclude.report_types"], values["exclude.created_by"],
                           values["exclude.report_ids"]),
        min_age=0.0 if values["safety.allow_young"] else values["safety.min_age"],
        stalled_for=values["filters.stalled_for"],
        notice=values["safety.notice"],
    )
    check_age_coverage(selection)
    return Settings(
        command=command,
        target=target,
        credentials=load_credentials(env, target.auth, need=CREDENTIALS_NEEDED.get(command, 2)),
        selection=selection,
        max_cancel=values["safety.max_cancel"],
        pacing=Pacing(**_section(values, "pacing")),
        listing=Listing(**_section(values, "listing")),
        output=Output(**_section(values, "output")),
        run=RunOptions(**_section(values, "run")),
        network=network_from(values, sources, env),
        state=StateOptions(**_section(values, "state")),
        values=values,
        sources=sources,
    )


def _covers(filters: Filters, status: str) -> bool:
    """Whether ``filters`` give runs in ``status`` an age basis of their own."""
    return (filters.older_than is not None or filters.idle_for is not None
            or status in dict(filters.older_than_by_status))


def check_age_coverage(selection: Selection) -> None:
    """A per-status threshold covers only the statuses it names. Where a table is the only age
    basis, a status it does not name would be selected at the bare age floor (a 7-minute-old
    QUERYDATA run cancelled by ``--older-than STARTED=20m``): refused, naming the statuses."""
    base = selection.filters
    scopes = [(None, base)] if not selection.rules else [(r, r.filters) for r in selection.rules]
    for rule, filters in scopes:
        if not (base.older_than_by_status or filters.older_than_by_status):
            continue
        uncovered = [s for s in base.statuses if s in filters.statuses
                     and not _covers(base, s) and not _covers(filters, s)]
        if uncovered:
            _refuse_uncovered(rule, uncovered, base.statuses)


def _refuse_uncovered(rule: Rule | None, uncovered: list[str], statuses: Iterable[str]) -> None:
    where = BY_STATUS if rule is None else f"rules.{rule.name}.older_than_by_status"
    covered = [s for s in statuses if s not in uncovered]
    narrow = f", or narrow --status to {', '.join(covered)}" if covered else ""
    raise ConfigError(where, (
        f"no age threshold for {', '.join(uncovered)}: the per-status threshold does not name "
        f"{'it' if len(uncovered) == 1 else 'them'} and no plain --older-than or --idle-for "
        "covers them, so those runs would be cancelled at the bare age floor. Name them (e.g. "
        f"--older-than {uncovered[0]}=1h), add a plain --older-than D for the rest{narrow}"))


BASIS = ("filters.older_than", BY_STATUS, "filters.idle_for", "filters.stalled_for",
         "run.ids_file", "run.plan")


def require_basis(settings: Settings) -> None:
    """``run`` cancels only on an explicit basis for selection (the CLI checks it right after
    loading): a bare ``run`` would cancel every in-progress run past the age floor.
    ``--older-than 0s`` is explicit (any age)."""
    values = settings.values
    if settings.command != "run" or settings.selection.rules \
            or any(values.get(name) not in (None, ()) for name in BASIS):
        return
    floor = format_duration(values["safety.min_age"])
    raise ConfigError("filters.older_than", (
        "run needs an explicit basis for selection: --older-than (e.g. --older-than 2h), "
        "--idle-for, --stalled-for, [[rules]] in the config file, --ids-file or --plan (flag, "
        f"ZUORA_REAPER_* or config file); without one it would cancel every in-progress run "
        f"older than {floor}. Preview with 'zuora-reaper plan' first"))


def _section(values: Mapping[str, Any], section: str) -> dict[str, Any]:
    return {k.field: values[k.name] for k in KEYS if k.section == section}


def _by_status(where: str, raw: Any) -> tuple[tuple[str, float], ...]:
    if not isinstance(raw, Mapping):
        raise ConfigError(where, "must be a table of STATUS = \"DURATION\"")
    out = []
    for status, duration in raw.items():
        if str(status).upper() not in IN_PROGRESS:
            raise ConfigError(where, f"{status!r} is not an in-progress status; "
                                     f"allowed: {', '.join(IN_PROGRESS)}")
        check_file_type(KEYS_BY_NAME["filters.older_than"], duration, f"{where}.{status}")
        try:
            out.append((str(status).upper(), _as_duration(duration)))
        except ValueError as exc:
            raise ConfigError(f"{where}.{status}", str(exc)) from exc
    return tuple(sorted(out))


def _filters(values: Mapping[str, Any], prefix: str) -> Filters:
    return Filters(
        older_than=values[prefix + "older_than"],
        older_than_by_status=values[prefix + "older_than_by_status"],
        idle_for=values[prefix + "idle_for"],
        statuses=values[prefix + "statuses"],
        report_types=values[prefix + "report_types"],
        created_by=values[prefix + "created_by"],
        report_ids=values[prefix + "report_ids"],
    )


def _rules(raw: Any) -> tuple[Rule, ...]:
    if not isinstance(raw, list):
        raise ConfigError("rules", "must be an array of tables: [[rules]]")
    rules = []
    for index, body in enumerate(raw):
        where = f"rules[{index}]"
        if not isinstance(body, Mapping) or not isinstance(body.get("name"), str):
            raise ConfigError(where, "each [[rules]] table needs a name = \"...\"")
        unknown = sorted(set(body) - {"name", *RULE_FIELDS})
        if unknown:
            raise ConfigError(f"{where}.{unknown[0]}",
                              f"unknown key; allowed: name, {', '.join(RULE_FIELDS)}")
        values: dict[str, Any] = {}
        for name in RULE_FIELDS:
            key = KEYS_BY_NAME.get("filters." + name)
            if key is None:
                values["r." + name] = _by_status(f"{where}.{name}", body.get(name, {}))
                continue
            if name in body:
                check_file_type(key, body[name], f"{where}.{name}")
            try:
                value = coerce(key, body.get(name, key.default))
            except ConfigError as exc:
                raise ConfigError(f"{where}.{name}", str(exc)) from exc
            values["r." + name] = value
        rules.append(Rule(name=body["name"], filters=_filters(values, "r.")))
    if len({r.name for r in rules}) != len(rules):
        raise ConfigError("rules", "rule names must be unique")
    return tuple(rules)


_RANGES: tuple[tuple[str, float, float], ...] = (
    ("listing.page_size", 1, 250), ("listing.max_pages", 1, 100_000),
    ("listing.max_passes", 1, 20), ("pacing.rate", 0.01, 10_000),
    ("pacing.concurrency", 1, 500), ("pacing.quota_share", 0.01, 1.0),
    ("pacing.max_attempts", 1, 20), ("pacing.attempt_timeout", 0.1, 600),
    ("pacing.retry_budget", 0, 1_000_000), ("safety.max_cancel", 0, 10_000_000),
    ("pacing.deadline", 0.001, 7 * 86400), ("filters.stalled_for", 1, 365 * 86400),
    ("safety.notice", 1, 365 * 86400), ("state.keep", 86400, 10 * 366 * 86400),
)


def _validate_state(values: Mapping[str, Any], sources: Mapping[str, str],
                    env: Mapping[str, str]) -> None:
    """A ``--state`` that names no store is refused here, and a password in it unless it came
    from the environment (a flag shows in ``ps``, a file is no place for secrets);
    --stalled-for and --notice must be shorter than --keep (or the state they read would be
    pruned first)."""
    if values["state.url"]:
        location = resolve(values["state.url"], env)
        if location and location.password() and sources["state.url"] != "env":
            raise ConfigError("state.url", "a password in the URL is a secret: give the URL "
                                           "in ZUORA_REAPER_STATE, or the password in "
                                           "PGPASSWORD or a PGPASSFILE, never in a flag or "
                                           "the config file")
    if values["safety.notice"] is not None and (values["run.plan"] or values["run.plan_out"]):
        raise ConfigError("safety.notice", "--notice does not combine with --plan or "
                                           "--plan-out: a plan hands over runs to cancel, and "
                                           "a notice defers them; schedule run --notice on its "
                                           "own (plan shows would_notice)")
    for name in ("filters.stalled_for", "safety.notice"):
        if values[name] is not None and values[name] >= values["state.keep"]:
            raise ConfigError(name, f"{format_duration(values[name])} is not shorter than "
                                    f"--keep {format_duration(values['state.keep'])}: the "
                                    "state would be pruned before it is used; raise --keep")


def _validate_ranges(values: Mapping[str, Any]) -> None:
    for name, low, high in _RANGES:
        value = values[name]
        if value is not None and not low <= value <= high:
            key = KEYS_BY_NAME[name]
            raise ConfigError(name, f"{value} is out of range; allowed: {low:g} to {high:g} "
                                    f"(flag {key.cli_flag}, env {key.env})")
    if not values["filters.statuses"]:
        raise ConfigError("filters.statuses", "at least one status is needed; allowed: "
                                              + ", ".join(IN_PROGRESS))


def _target(values: Mapping[str, Any], sources: Mapping[str, str],
            optional: bool = False) -> Target:
    auth = values["target.auth"]
    base, env_name = values["target.base_url"], values["target.environment"]
    if base and env_name:
        rank_base = SOURCE_RANK[sources["target.base_url"]]
        rank_env = SOURCE_RANK[sources["target.environment"]]
        if rank_base == rank_env:
            raise ConfigError("target.base_url", "set either base_url or environment, not both")
        base, env_name = (base, None) if rank_base > rank_env else (None, env_name)
    if env_name:
        if env_name not in environments.ENVIRONMENTS:
            raise ConfigError("target.environment", f"unknown environment {env_name!r}; allowed: "
                                                    + ", ".join(environments.ENVIRONMENTS))
        base = environments.base_url_for(env_name, auth)
    if not base and optional:  # history: every target, unless one is named
        return Target(base_url="", environment=None, auth=auth)
    if not base:
        raise ConfigError("target.base_url",
                          "no target: set --base-url or --environment (see README)")
    return Target(base_url=check_base_url(base), environment=env_name, auth=auth)


def check_base_url(url: str) -> str:
    """Validate a host root: the checks of ``check_service_url`` (https, http only for
    loopback, a host, a valid port), and no path, query or user: the tool appends the paths."""
    parts = urlsplit(url.strip())
    if parts.username is not None or parts.password is not None:
        raise ConfigError("target.base_url", "must not hold user:password@ (the URL is not "
                                             "echoed: it holds credentials); credentials come "
                                             "from ZUORA_CLIENT_ID/ZUORA_CLIENT_SECRET or "
                                             "ZUORA_USERNAME/ZUORA_PASSWORD")
    check_service_url("target.base_url", url, https_only=True)
    if parts.path not in ("", "/") or parts.query or parts.username:
        raise ConfigError("target.base_url", f"{url!r} must be a host root with no path, e.g. "
                                             "https://rest.zuora.com: the tool appends the API "
                                             "paths itself")
    return canonical_origin(parts.scheme, parts.hostname or "", parts.port)


DEFAULT_PORTS = {"https": 443, "http": 80}


def canonical_origin(scheme: str, host: str, port: int | None) -> str:
    """One spelling per origin (the target's identity, its lock and its metrics depend on it):
    the host in lower case, no default port. ``https://REST.zuora.com:443`` is
    ``https://rest.zuora.com``."""
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != DEFAULT_PORTS.get(scheme):
        netloc += f":{port}"
    return f"{scheme}://{netloc}"


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _validate_outputs(values: Mapping[str, Any]) -> None:
    """Pushgateway, webhook and job name: checked here so a typo fails before any network call."""
    if not values["output.job_name"]:
        raise ConfigError("output.job_name", "must not be empty")
    for key in ("output.report_file", "run.plan_out", "output.metrics_file", "run.capture"):
        if values[key]:
            check_output_path(key, values[key])
    if values["run.lock_file"]:  # lock.py refuses what is not a regular file, at open
        check_output_folder("run.lock_file", values["run.lock_file"])
    if values["output.pushgateway"]:
        check_service_url("output.pushgateway", values["output.pushgateway"], https_only=False)
    if values["output.notify_webhook"]:
        check_service_url("output.notify_webhook", values["output.notify_webhook"],
                          https_only=True)


def check_service_url(key: str, url: str, *, https_only: bool) -> str:
    """An http(s) URL with a host (a path and query are allowed); with ``https_only`` plain http
    is accepted only for loopback hosts. The URL itself is never echoed: it may hold a token."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(key, "must be an absolute http(s) URL, e.g. https://host/path")
    if parts.fragment:
        raise ConfigError(key, "must not have a #fragment")
    if parts.username and not https_only:
        raise ConfigError(key, "user:password@ in the URL is not supported here")
    if https_only and parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ConfigError(key, f"plain http is only allowed for loopback hosts, not "
                               f"{parts.hostname!r}; use https")
    try:
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise ConfigError(key, "has an invalid port") from exc
    return url.strip()
