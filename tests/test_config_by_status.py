"""Per-status thresholds can come from the environment too, merged status by status."""

from __future__ import annotations

import pytest

from worker.config import BY_STATUS, load_settings
from worker.errors import ConfigError

BASE = {"target.base_url": "http://127.0.0.1:1"}
CREDS = {"ZUORA_CLIENT_ID": "id", "ZUORA_CLIENT_SECRET": "secret"}


def test_env_sets_per_status_thresholds():
    """ZUORA_REAPER_OLDER_THAN_BY_STATUS sets thresholds by status, source env."""
    env = {**CREDS, "ZUORA_REAPER_OLDER_THAN_BY_STATUS": "started=20m, QUERYDATA=2h",
           "ZUORA_REAPER_OLDER_THAN": "6h"}  # the plain threshold covers PROCESSINGDATA
    s = load_settings("plan", BASE, env)
    assert s.selection.filters.older_than_by_status == (("QUERYDATA", 7200.0),
                                                        ("STARTED", 1200.0))
    assert s.sources["filters.older_than_by_status"] == "env"


def test_file_env_and_flag_merge_status_by_status(tmp_path):
    """file < env < flag, per status: each layer overrides only the statuses it names."""
    path = tmp_path / "c.toml"
    path.write_text('[filters.older_than_by_status]\nSTARTED = "1h"\nPROCESSINGDATA = "6h"\n')
    env = {**CREDS, "ZUORA_REAPER_OLDER_THAN_BY_STATUS": "STARTED=30m,QUERYDATA=2h"}
    flags = {**BASE, "filters.older_than_by_status": {"QUERYDATA": "3h"}}
    s = load_settings("plan", flags, env, str(path))
    assert dict(s.selection.filters.older_than_by_status) == {
        "STARTED": 1800.0, "QUERYDATA": 10800.0, "PROCESSINGDATA": 21600.0}
    assert s.sources["filters.older_than_by_status"] == "flag"


@pytest.mark.parametrize("value", ["STARTED", "STARTED=banana", "DONE=1h"])
def test_bad_env_table_is_a_config_error_naming_it(value):
    """A malformed entry is a ConfigError naming the variable or the key, never a crash."""
    env = {**CREDS, "ZUORA_REAPER_OLDER_THAN_BY_STATUS": value}
    with pytest.raises(ConfigError, match=r"OLDER_THAN_BY_STATUS|older_than_by_status"):
        load_settings("plan", BASE, env)


@pytest.mark.parametrize(("flags", "env", "file"), [
    ({"filters.older_than": "2h", BY_STATUS: {"STARTED": "20m"}}, {}, None),
    ({}, {"ZUORA_REAPER_OLDER_THAN": "2h,STARTED=20m"}, None),
    ({}, {}, '[filters]\nolder_than = ["2h", "STARTED=20m"]\n'),
    ({}, {"ZUORA_REAPER_OLDER_THAN": "2h", "ZUORA_REAPER_OLDER_THAN_BY_STATUS": "STARTED=20m"},
     None),
    ({}, {}, '[filters]\nolder_than = "2h"\n[filters.older_than_by_status]\nSTARTED = "20m"\n'),
], ids=["flags", "env", "file-list", "env-table", "file-table"])
def test_status_duration_means_the_same_from_every_source(tmp_path, flags, env, file):
    """STATUS=DURATION was documented for the variable and the file but worked only as a flag:
    each source now gives the same thresholds."""
    path = None
    if file is not None:
        path = tmp_path / "c.toml"
        path.write_text(file)
    settings = load_settings("plan", {"target.base_url": "https://rest.zuora.com", **flags},
                             {**CREDS, **env}, str(path) if path else None)
    assert settings.selection.filters.older_than == 7200
    assert dict(settings.selection.filters.older_than_by_status) == {"STARTED": 1200}
