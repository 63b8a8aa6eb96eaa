"""Per-status thresholds, alone and with a global --older-than, against the emulator."""

from __future__ import annotations

import pytest

MIN, HOUR = 60.0, 3600.0

# name -> (status, age in seconds)
RUNS = {
    "s10m": ("STARTED", 10 * MIN), "s30m": ("STARTED", 30 * MIN), "s90m": ("STARTED", 90 * MIN),
    "q90m": ("QUERYDATA", 90 * MIN), "q3h": ("QUERYDATA", 3 * HOUR),
    "p5h": ("PROCESSINGDATA", 5 * HOUR), "p7h": ("PROCESSINGDATA", 7 * HOUR),
}
PER_STATUS = ("--older-than", "STARTED=20m", "--older-than", "QUERYDATA=2h",
              "--older-than", "PROCESSINGDATA=6h")


def _stage(emu):
    emu.clear_runs()
    return {name: emu.add_run(status=s, age_s=age).id for name, (s, age) in RUNS.items()}


@pytest.mark.parametrize(("flags", "expected"), [
    pytest.param(PER_STATUS, {"s30m", "s90m", "q3h", "p7h"}, id="per-status-only"),
    pytest.param(("--older-than", "1h", *PER_STATUS), {"s90m", "q3h", "p7h"},
                 id="global-raises-STARTED"),
    pytest.param(("--older-than", "4h", *PER_STATUS), {"p7h"}, id="global-raises-all-but-P"),
    pytest.param(("--older-than", "1h", "--older-than", "PROCESSINGDATA=6h"),
                 {"s90m", "q90m", "q3h", "p7h"}, id="global-plus-one-status"),
])
def test_per_status_thresholds(emu_thread, cli, fast, reasons, flags, expected):
    """Each status needs max(--older-than, its own threshold); run DELETEs exactly those runs."""
    emu = emu_thread(runs=0)
    ids = _stage(emu)
    res = cli(emu, "run", *flags, *fast)
    assert res.code == 0, res.stderr
    want = {ids[n] for n in expected}
    assert {r.run_id for r in emu.deletes()} == want
    got = reasons(res.report)
    for name, run_id in ids.items():
        assert got[run_id][1] == ("selected" if name in expected else "too_young"), name


def test_file_table_merges_with_flag(emu_thread, cli, fast, reasons, write_file):
    """A per-status flag overrides only its status: the file's other thresholds still hold."""
    emu = emu_thread(runs=0)
    ids = _stage(emu)
    config = write_file("c.toml", '[filters.older_than_by_status]\nSTARTED = "2h"\n'
                                  'PROCESSINGDATA = "6h"\n')
    res = cli(emu, "plan", "--config", config, "--older-than", "STARTED=20m", *fast)
    assert res.code == 2  # QUERYDATA has no threshold: it would be selected at the floor
    assert "no age threshold for QUERYDATA" in res.stderr
    res = cli(emu, "plan", "--config", config, "--older-than", "STARTED=20m",
              "--status", "STARTED", "--status", "PROCESSINGDATA", *fast)
    assert res.code == 0, res.stderr
    assert emu.deletes() == []
    selected = {i for i, (sel, _, _) in reasons(res.report).items() if sel}
    # STARTED uses the flag (20m); PROCESSINGDATA keeps the file's 6h.
    assert selected == {ids[n] for n in ("s30m", "s90m", "p7h")}
    assert res.report["filters"]["older_than_by_status_s"] == {"PROCESSINGDATA": 21600.0,
                                                               "STARTED": 1200.0}


def test_per_status_from_file_alone(emu_thread, cli, fast, reasons, write_file):
    """[filters.older_than_by_status] in the config file selects per status without flags."""
    emu = emu_thread(runs=0)
    ids = _stage(emu)
    config = write_file("c.toml", '[filters]\nolder_than = "1h"\n'
                                  '[filters.older_than_by_status]\nQUERYDATA = "2h"\n')
    res = cli(emu, "plan", "--config", config, *fast)
    assert res.code == 0, res.stderr
    selected = {i for i, (sel, _, _) in reasons(res.report).items() if sel}
    assert selected == {ids[n] for n in ("s90m", "q3h", "p5h", "p7h")}
