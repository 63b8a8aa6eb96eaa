"""End to end against the API as Zuora's docs allow it to answer (zuora-api.md §6.4, §8): a
GET without the owner, a listing without it, columns the docs do not show dropped or refused,
pageSize ignored, pages past the end clamped, totals present or not. Our client and our
emulator must not pass only because both assume the same thing."""

from __future__ import annotations

import pytest

BOT = "reporting-bot@example.com"
VARIANTS = {
    "as the emulator answers": {},
    "GET without owner": {"get_owner": False},
    "listing without owner": {"user_field": "none"},
    "undocumented columns dropped": {"columns": "drop"},
    "undocumented columns refused": {"columns": "refuse"},
    "pageSize ignored": {"page_size_fixed": 250, "list_totals": False},
    "pages clamped to the last": {"clamp_pages": True, "list_totals": False},
    "no totals": {"list_totals": False},
    "a bare list": {"list_shape": "list"},
}


def _stage(emu) -> tuple[set[str], set[str]]:
    """30 old runs (6 of them the bot's) and 5 young ones; the ids of the old ones, by owner."""
    mine, bots = set(), set()
    for i in range(30):
        owner = BOT if i % 5 == 0 else f"user{i}@example.com"
        run = emu.add_run(status="STARTED", age_s=7200 + i, created_by=owner)
        (bots if owner == BOT else mine).add(run.id)
    for _ in range(5):
        emu.add_run(status="STARTED", age_s=60)
    return mine, bots


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_the_core_scenario_holds_however_the_api_answers(emu_thread, cli, fast, variant):
    """The bot's runs are excluded, every other old run is cancelled, the listing ends with at
    most one page more than the runs need, and a run whose owner is unknown is never cancelled
    by an owner exclusion: it is left alone, with a job-level warning."""
    emu = emu_thread(runs=0, **VARIANTS[variant])
    mine, bots = _stage(emu)
    res = cli(emu, "run", "--older-than", "1h", "--exclude-created-by", BOT, "--page-size",
              "10", *fast)
    assert res.code == 0, res.stderr
    assert not bots & emu.cancelled_ids()
    if variant == "listing without owner":
        assert emu.cancelled_ids() == set()
        assert {res.report["runs"][i]["reason"] for i in range(35)} >= {"unknown_owner"}
        assert any("no listed run carried createdByUserProfile.username" in w
                   for w in res.report["warnings"])
    else:
        assert emu.cancelled_ids() == mine
    pages_needed = -(-35 // (250 if "pageSize" in variant else 10))
    assert emu.count("list") <= 2 * (pages_needed + 1)  # two passes at most, one page more


@pytest.mark.parametrize("variant", ["GET without owner", "as the emulator answers"])
def test_ids_file_runs_of_an_excluded_owner_are_never_cancelled(emu_thread, cli, fast,
                                                                tmp_path, variant):
    """--ids-file reads each run with a GET, which Zuora documents without an owner: the bot's
    runs must then be left alone (unknown_owner), not cancelled (all 24 of them were)."""
    emu = emu_thread(runs=0, **VARIANTS[variant])
    mine, bots = _stage(emu)
    ids = tmp_path / "ids.txt"
    ids.write_text("\n".join(sorted(mine | bots)) + "\n")
    res = cli(emu, "run", "--ids-file", str(ids), "--exclude-created-by", BOT, *fast)
    assert res.code == 0, res.stderr
    assert not bots & emu.cancelled_ids()
    if variant == "GET without owner":
        assert emu.cancelled_ids() == set()
        reasons = {r["reason"] for r in res.report["runs"]}
        assert reasons == {"unknown_owner"}
        assert any("30 run(s) not selected" in w for w in res.report["warnings"])
    else:
        assert emu.cancelled_ids() == mine


def test_idle_for_against_a_server_that_drops_updated_on_says_so(emu_thread, cli, fast):
    """--idle-for needs updatedOn, which the docs do not show: a server that drops the column
    leaves every run alone, and the job says why at job level, once."""
    emu = emu_thread(runs=0, columns="drop")
    _stage(emu)
    res = cli(emu, "run", "--older-than", "1h", "--idle-for", "30m", *fast)
    assert res.code == 0, res.stderr
    assert emu.cancelled_ids() == set()
    warnings = [w for w in res.report["warnings"] if "no listed run carried updatedOn" in w]
    assert warnings == ["no listed run carried updatedOn: --idle-for left all 35 alone (the "
                        "server did not return that field; 'zuora-reaper check' shows what "
                        "it returns)"]


def test_idle_for_against_a_server_that_refuses_updated_on_fails_loudly(emu_thread, cli, fast):
    """A server that refuses the column: exit 6, the server's words in the reason, nothing
    cancelled."""
    emu = emu_thread(runs=0, columns="refuse")
    _stage(emu)
    res = cli(emu, "run", "--older-than", "1h", "--idle-for", "30m", *fast)
    assert res.code == 6, res.stderr
    assert "unknown column(s) updatedOn" in res.report["exit_reason"]
    assert emu.deletes() == []


def test_a_get_without_the_owner_keeps_the_listings_owner(emu_thread, cli, fast):
    """A refused DELETE is read back with a GET, which Zuora documents without an owner: the
    report keeps the owner the listing gave, and the outcome is the GET's."""
    emu = emu_thread(runs=0, get_owner=False)
    run = emu.add_run(status="STARTED", age_s=7200, created_by="carol@example.com")
    emu.config.cancel_script = {run.id: ["finish"]}
    res = cli(emu, "run", "--older-than", "1h", *fast)
    assert res.code == 0, res.stderr
    [entry] = res.report["runs"]
    assert entry["created_by"] == "carol@example.com"
    assert entry["outcome"] == "already_finished"
    assert any(r.kind == "get" for r in emu.records)
