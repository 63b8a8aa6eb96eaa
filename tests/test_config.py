"""Settings: precedence flag > env > file > default, validation naming key and allowed values."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from worker.config import load_settings
from worker.errors import ConfigError
from worker.keys import KEYS

CREDS = {"ZUORA_CLIENT_ID": "id-0001", "ZUORA_CLIENT_SECRET": "secret-0001"}
BASE = {"target.base_url": "https://rest.zuora.com"}


def _toml(tmp_path: Path, text: str) -> str:
    path = tmp_path / "reaper.toml"
    path.write_text(text)
    return str(path)


def _load(flags=None, env=None, config=None, command="run"):
    return load_settings(command, {**BASE, **(flags or {})}, {**CREDS, **(env or {})}, config)


# ------------------------------------------------------------------ precedence
def test_default_when_nothing_is_set():
    """With no flag, env or file, every key has its default and the source 'default'."""
    settings = _load()
    assert settings.pacing.rate == 10.0
    assert settings.max_cancel == 100
    assert settings.selection.filters.statuses == ("STARTED", "QUERYDATA", "PROCESSINGDATA")
    assert settings.sources["pacing.rate"] == "default"


def test_precedence_flag_env_file_default(tmp_path):
    """A key set everywhere takes the flag's value, then env's, then the file's."""
    config = _toml(tmp_path, "[pacing]\nrate = 5.0\n[safety]\nmax_cancel = 11\n")
    env = {"ZUORA_REAPER_RATE": "7", "ZUORA_REAPER_MAX_CANCEL": "12"}
    flags = {"pacing.rate": "9"}
    settings = _load(flags, env, config)
    assert settings.pacing.rate == 9.0
    assert settings.sources["pacing.rate"] == "flag"
    assert settings.max_cancel == 12
    assert settings.sources["safety.max_cancel"] == "env"
    settings = _load({}, env, config)
    assert settings.pacing.rate == 7.0
    settings = _load({}, {}, config)
    assert settings.pacing.rate == 5.0
    assert settings.max_cancel == 11
    assert settings.sources["pacing.rate"] == "file"


def test_precedence_for_lists_and_durations(tmp_path):
    """Lists and durations layer the same way; env lists are comma separated."""
    config = _toml(tmp_path, '[filters]\nstatuses = ["STARTED"]\nolder_than = "2h"\n'
                             'report_types = ["Detail"]\n')
    settings = _load({}, {"ZUORA_REAPER_STATUSES": "queryData, processingdata"}, config)
    assert settings.selection.filters.statuses == ("QUERYDATA", "PROCESSINGDATA")
    assert settings.selection.filters.older_than == 7200.0
    assert settings.selection.filters.report_types == ("Detail",)
    settings = _load({"filters.older_than": "90s", "filters.statuses": ["STARTED"]},
                     {"ZUORA_REAPER_OLDER_THAN": "1d"}, config)
    assert settings.selection.filters.older_than == 90.0
    assert settings.selection.filters.statuses == ("STARTED",)


def test_exclusion_env_vars_do_not_collide_with_filters():
    """ZUORA_REAPER_REPORT_TYPES includes, ZUORA_REAPER_EXCLUDE_REPORT_TYPES excludes."""
    assert len({k.env for k in KEYS}) == len(KEYS)
    settings = _load(env={"ZUORA_REAPER_REPORT_TYPES": "Detail",
                          "ZUORA_REAPER_EXCLUDE_CREATED_BY": "bot@example.com"})
    assert settings.selection.filters.report_types == ("Detail",)
    assert settings.selection.exclude.report_types == ()
    assert settings.selection.exclude.created_by == ("bot@example.com",)
    assert settings.selection.filters.created_by == ()


def test_allow_young_sets_min_age_zero(tmp_path):
    """The age floor is 300 s unless allow_young is set (by flag, env or file)."""
    assert _load().selection.min_age == 300.0
    assert _load({"safety.allow_young": True}).selection.min_age == 0.0
    assert _load(env={"ZUORA_REAPER_ALLOW_YOUNG": "yes"}).selection.min_age == 0.0
    config = _toml(tmp_path, "[safety]\nallow_young = true\n")
    assert _load(config=config).selection.min_age == 0.0


def test_flag_base_url_beats_file_environment(tmp_path):
    """A --base-url flag overrides an environment set in the file."""
    config = _toml(tmp_path, '[target]\nenvironment = "eu-sandbox"\n')
    settings = _load({"target.base_url": "http://127.0.0.1:9999"}, {}, config)
    assert settings.target.base_url == "http://127.0.0.1:9999"
    assert settings.target.environment is None


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize(("flags", "key", "allowed"), [
    ({"filters.older_than": "banana"}, "filters.older_than", "90s"),
    ({"filters.older_than": "10"}, "filters.older_than", "30m"),
    ({"filters.statuses": ["STARTED", "COMPLETED"]}, "filters.statuses", "PROCESSINGDATA"),
    ({"target.auth": "kerberos"}, "target.auth", "oauth, legacy"),
    ({"output.log_format": "xml"}, "output.log_format", "json"),
    ({"output.log_level": "loud"}, "output.log_level", "debug"),
    ({"listing.page_size": "251"}, "listing.page_size", "1 to 250"),
    ({"safety.max_cancel": "many"}, "safety.max_cancel", "--max-cancel"),
    ({"pacing.concurrency": "0"}, "pacing.concurrency", "1 to 500"),
    ({"safety.allow_young": "perhaps"}, "safety.allow_young", "true or false"),
    ({"target.environment": "mars-production", "target.base_url": None},
     "target.environment", "us-production"),
    ({"target.base_url": "https://rest.zuora.com/reporting"}, "target.base_url", "no path"),
    ({"target.base_url": "http://rest.zuora.com"}, "target.base_url", "https"),
])
def test_config_errors_name_key_and_allowed(flags, key, allowed):
    """Each bad value raises ConfigError naming the key and what is allowed."""
    with pytest.raises(ConfigError) as info:
        _load(flags)
    assert info.value.key == key
    assert allowed in str(info.value)


@pytest.mark.parametrize(("text", "key"), [
    ("[pacing]\nspeed = 3\n", "pacing.speed"),
    ("[nonsense]\na = 1\n", "nonsense"),
    ("[pacing\n", "--config"),
    ('[filters]\nolder_than = "soon"\n', "filters.older_than"),
    ('[filters.older_than_by_status]\nCOMPLETED = "1h"\n', "filters.older_than_by_status"),
])
def test_config_file_errors(tmp_path, text, key):
    """Unknown keys or sections, invalid TOML and bad values in the file name the key."""
    with pytest.raises(ConfigError) as info:
        _load(config=_toml(tmp_path, text))
    assert info.value.key == key


def test_bad_env_value_names_the_variable():
    """A bad environment value is reported with the flag and the variable to fix."""
    with pytest.raises(ConfigError) as info:
        _load(env={"ZUORA_REAPER_PAGE_SIZE": "lots"})
    assert "ZUORA_REAPER_PAGE_SIZE" in str(info.value)
    assert "--page-size" in str(info.value)


def test_cli_config_error_exit_2_and_names_key(emu_thread, cli):
    """Through the CLI: --status COMPLETED exits 2, names the key and allowed values, no request."""
    emu = emu_thread(runs=0)
    res = cli(emu, "run", "--status", "COMPLETED")
    assert res.code == 2
    assert "filters.statuses" in res.stderr
    assert "STARTED, QUERYDATA, PROCESSINGDATA" in res.stderr
    assert emu.records == []


def test_cli_banana_exit_2_no_request(emu_thread, cli):
    """--older-than banana exits 2 and the emulator records no request at all."""
    emu = emu_thread(runs=0)
    emu.add_run()
    res = cli(emu, "--older-than", "banana")
    assert res.code == 2
    assert emu.records == []
    assert "banana" in res.stderr


def test_cli_config_file_is_used(emu_thread, cli, tmp_path):
    """--config PATH feeds the job; a flag still beats the file."""
    emu = emu_thread(runs=0)
    emu.add_run(run_id="d", report_type="Detail")
    emu.add_run(run_id="s", report_type="Summary")
    config = _toml(tmp_path, '[filters]\nreport_types = ["Summary"]\nolder_than = "0s"\n'
                             '[pacing]\nrate = 500.0\n')
    res = cli(emu, "run", "--config", config)
    assert res.code == 0, res.stderr
    assert emu.cancelled_ids() == {"s"}
    res = cli(emu, "plan", "--config", config, "--report-type", "Detail")
    assert res.code == 0, res.stderr
    assert res.report["filters"]["report_types"] == ["Detail"]


# ------------------------------------------------------------------ TOML values typed like flags
@pytest.mark.parametrize(("text", "key", "words"), [
    ("[filters]\nolder_than = 2\n", "filters.older_than", 'written like "2h"'),
    ("[safety]\nallow_young = \"yes\"\n", "safety.allow_young", "written like true"),
    ("[safety]\nmax_cancel = \"50\"\n", "safety.max_cancel", "written like 50"),
    ("[safety]\nmax_cancel = true\n", "safety.max_cancel", "is a bool"),
    ("[pacing]\nrate = \"5\"\n", "pacing.rate", "written like 2.5"),
    ("[filters]\nstatuses = \"STARTED\"\n", "filters.statuses", '["a", "b"]'),
    ("[filters.older_than_by_status]\nSTARTED = 1200\n", "filters.older_than_by_status.STARTED",
     'written like "2h"'),
    ("[[rules]]\nname = \"r\"\nolder_than = 7200\n", "rules[0].older_than", 'like "2h"'),
])
def test_file_values_are_typed_like_flags(tmp_path, text, key, words):
    """A TOML value of the wrong type names the key, what it is, and an example; 2 is not
    read as 2 seconds, "yes" as true or "50" as an integer."""
    with pytest.raises(ConfigError, match=r"^" + re.escape(key) + r": .*" + re.escape(words)):
        _load(config=_toml(tmp_path, text))


def test_well_typed_file_values_load(tmp_path):
    settings = _load(config=_toml(tmp_path, '[filters]\nolder_than = "2h"\n'
                                            '[safety]\nallow_young = true\nmax_cancel = 50\n'
                                            '[pacing]\nrate = 5\nquota_share = 0.5\n'))
    assert settings.selection.filters.older_than == 7200
    assert (settings.selection.min_age, settings.max_cancel, settings.pacing.rate) == (0, 50, 5)
