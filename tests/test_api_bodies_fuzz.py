"""Hypothesis fuzzing: response parsers never crash; the config loader raises only ConfigError."""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import LOOSE_JSON

from worker.api_bodies import parse_run, parse_time
from worker.config import load_settings
from worker.errors import ConfigError, UnusableResponse
from worker.keys import KEYS, Key
from worker.listing import extract_items
from worker.models import ReportRun

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])

json_values = LOOSE_JSON
time_like = (st.integers(min_value=-2**70, max_value=2**70) | st.floats(allow_nan=True)
             | st.from_regex(r"\d{9,16}(\.\d+)?", fullmatch=True)
             | st.from_regex(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?([+-]\d{4}|Z)?",
                             fullmatch=True)
             | st.text(max_size=40) | json_values)
RUN_KEYS = ("id", "reportRunId", "status", "startedOn", "updatedOn", "reportId", "reportType",
            "createdByUserProfile", "createdBy")
run_items = st.dictionaries(st.sampled_from(RUN_KEYS), time_like | json_values, max_size=8) \
    | json_values


@SETTINGS
@given(time_like)
def test_parse_time_never_raises(value: Any) -> None:
    """parse_time returns an aware datetime or None for any input."""
    parsed = parse_time(value)
    assert parsed is None or (isinstance(parsed, datetime) and parsed.tzinfo is not None)


@SETTINGS
@given(run_items)
def test_parse_run_never_raises_and_flags_what_it_cannot_read(item: Any) -> None:
    """parse_run never raises; a run without id, status or startedOn carries a problem."""
    run = parse_run(item)
    assert isinstance(run, ReportRun)
    if run.id is None or run.status is None or run.started_on is None:
        assert not run.parseable
    if run.parseable:
        assert isinstance(item, dict)


listing_bodies = st.fixed_dictionaries(
    {}, optional={"success": json_values, "response": json_values | st.lists(run_items),
                  "reasons": json_values}) | json_values


@SETTINGS
@given(listing_bodies, st.none() | st.sampled_from(["content", "data", "reportRuns"]))
def test_extract_items_returns_a_list_or_refuses(body: Any, field: str | None) -> None:
    """extract_items returns a list or raises UnusableResponse, nothing else."""
    try:
        items: Any = extract_items(body, field)
    except UnusableResponse as exc:
        items = exc
    assert isinstance(items, list) or str(items)


# ---------------------------------------------------------------- the config loader

raw_text = st.text(max_size=20) | st.sampled_from(
    ["", " ", "0", "-1", "1e400", "nan", "inf", "-inf", "1.5", "10", "250", "251", "true",
     "off", "STARTED", "started,QUERYDATA", "1h", "90s", "1h30m", "-5m", "0s", "1e309s",
     "99999999999999999999999d", "https://x.example", "http://127.0.0.1:1", "json", "debug"])


def _flag_value(key: Key) -> st.SearchStrategy[Any]:
    """What argparse can hand over for ``key`` (see worker.cli.add_job_options)."""
    if key.kind == "bool":
        return st.just(True)
    if key.kind == "list":
        return st.lists(raw_text, min_size=1, max_size=3)
    return raw_text


flags = st.fixed_dictionaries(
    {}, optional={**{k.name: _flag_value(k) for k in KEYS},
                  "filters.older_than_by_status": st.dictionaries(raw_text, raw_text,
                                                                  min_size=1, max_size=2)})
env_names = [k.env for k in KEYS] + ["ZUORA_CLIENT_ID", "ZUORA_CLIENT_SECRET", "ZUORA_USERNAME",
                                     "ZUORA_PASSWORD", "ZUORA_ENTITY_ID",
                                     "ZUORA_CLIENT_SECRET_FILE", "ZUORA_PASSWORD_FILE"]
envs = st.dictionaries(st.sampled_from(env_names), raw_text, max_size=8)
toml_scalars = (st.integers(min_value=-2**63, max_value=2**63 - 1)
                | st.floats(allow_nan=True) | st.booleans() | raw_text)
toml_values = toml_scalars | st.lists(toml_scalars, max_size=3) \
    | st.dictionaries(raw_text, toml_scalars, max_size=2)
sections = st.sampled_from([*sorted({k.section for k in KEYS}), "rules", "bogus"])
fields = st.sampled_from([*sorted({k.field for k in KEYS}), "older_than_by_status", "nope", "name"])
files = st.dictionaries(sections, st.dictionaries(fields, toml_values, max_size=4)
                        | st.lists(st.dictionaries(fields, toml_values, max_size=3), max_size=2),
                        max_size=4)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") \
            if math.isinf(value) else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return '"' + value.encode("unicode_escape").decode("ascii").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{_toml_value(str(k))} = {_toml_value(v)}"
                           for k, v in value.items()) + "}"


def _toml(data: dict[str, Any]) -> str:
    lines: list[str] = []
    for section, body in data.items():
        tables = body if isinstance(body, list) else [body]
        for table in tables:
            lines.append(f"[[{section}]]" if isinstance(body, list) else f"[{section}]")
            lines += [f"{_toml_value(k)} = {_toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


@SETTINGS
@given(st.sampled_from(["plan", "run", "check", "explain"]), flags, envs,
       st.none() | files | st.text(max_size=60))
def test_config_loader_raises_only_config_error(tmp_path: Path, command: str,
                                                flag_map: dict[str, Any], env: dict[str, str],
                                                file: Any) -> None:
    """Random flags, environment and config file: Settings or ConfigError, never anything else."""
    path = None
    if file is not None:
        path = tmp_path / "config.toml"
        path.write_text(_toml(file) if isinstance(file, dict) else file, encoding="utf-8")
    try:
        outcome: Any = load_settings(command, flag_map, env, str(path) if path else None)
    except ConfigError as exc:
        outcome = exc
    assert str(outcome)


VALID_ENV = {"ZUORA_CLIENT_ID": "id-123456", "ZUORA_CLIENT_SECRET": "secret-123456",
             "ZUORA_USERNAME": "user", "ZUORA_PASSWORD": "password-123456"}


@SETTINGS
@given(st.sampled_from(["plan", "run"]), flags, envs, st.none() | files)
def test_config_loader_deep_values_raise_only_config_error(
        tmp_path: Path, command: str, flag_map: dict[str, Any], env: dict[str, str],
        file: Any) -> None:
    """With a valid target and credentials, random values reach every validator."""
    flag_map = {"target.base_url": "https://rest.apisandbox.zuora.com", **flag_map}
    path = None
    if file is not None:
        path = tmp_path / "config.toml"
        path.write_text(_toml(file), encoding="utf-8")
    try:
        loaded: Any = load_settings(command, flag_map, {**VALID_ENV, **env},
                                    str(path) if path else None)
    except ConfigError as exc:
        loaded = exc
    assert str(loaded)
    assert "secret-123456" not in repr(loaded)
    assert "password-123456" not in repr(loaded)
