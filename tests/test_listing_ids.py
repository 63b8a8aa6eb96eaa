"""--ids-file: no listing, one GET per id, and the same filters and guards as a listing."""

from __future__ import annotations

import io

import pytest

from worker.errors import ConfigError
from worker.listing import read_ids

MIN, HOUR = 60.0, 3600.0


def _stage(emu):
    emu.clear_runs()
    return {
        "ok": emu.add_run(status="STARTED", age_s=3 * HOUR),
        "ok2": emu.add_run(status="QUERYDATA", age_s=3 * HOUR),
        "finished": emu.add_run(status="COMPLETED", age_s=3 * HOUR),
        "cancelled": emu.add_run(status="CANCELLED", age_s=3 * HOUR),
        "young": emu.add_run(status="STARTED", age_s=2 * MIN),
        "recent": emu.add_run(status="STARTED", age_s=30 * MIN),
        "excluded": emu.add_run(status="STARTED", age_s=3 * HOUR),
        "carol": emu.add_run(status="STARTED", age_s=3 * HOUR, created_by="carol@example.com"),
        "not_listed": emu.add_run(status="STARTED", age_s=3 * HOUR),
    }


def _ids_text(runs, names):
    lines = ["# ids to cancel", ""]
    lines += [f"  {runs[n].id}  # {n}" for n in names]
    lines += ["deadbeefdeadbeefdeadbeefdeadbeef", runs["ok"].id, ""]
    return "\n".join(lines) + "\n"


NAMES = ("ok", "ok2", "finished", "cancelled", "young", "recent", "excluded", "carol")


def test_ids_file_honours_filters_and_guards(emu_thread, cli, fast, reasons, write_file):
    """Only the eligible ids are DELETEd: finished, young, excluded and unknown ids are not."""
    emu = emu_thread(runs=0)
    runs = _stage(emu)
    path = write_file("ids.txt", _ids_text(runs, NAMES))
    res = cli(emu, "run", "--ids-file", path, "--older-than", "1h", "--exclude-report-id",
              runs["excluded"].id, "--exclude-created-by", "carol@example.com", *fast)
    assert res.code == 0, res.stderr
    assert {r.run_id for r in emu.deletes()} == {runs["ok"].id, runs["ok2"].id}
    assert emu.count("list") == 0
    assert sorted(r.run_id for r in emu.records if r.kind == "get") == \
        sorted([runs[n].id for n in NAMES] + ["deadbeefdeadbeefdeadbeefdeadbeef"])
    got = {k: v[:2] for k, v in reasons(res.report).items()}
    assert got == {
        runs["ok"].id: (True, "selected"), runs["ok2"].id: (True, "selected"),
        runs["finished"].id: (False, "status"), runs["cancelled"].id: (False, "status"),
        runs["young"].id: (False, "too_young"), runs["recent"].id: (False, "too_young"),
        runs["excluded"].id: (False, "excluded_report_id"),
        runs["carol"].id: (False, "excluded_created_by"),
        "deadbeefdeadbeefdeadbeefdeadbeef": (False, "not_found"),
    }
    assert res.report["passes"] == 1
    assert emu.runs[runs["not_listed"].id].status == "STARTED"


def test_ids_file_age_floor_without_older_than(emu_thread, cli, fast, reasons, write_file):
    """Without --older-than the age floor still keeps a 2-minute-old id from being cancelled."""
    emu = emu_thread(runs=0)
    runs = _stage(emu)
    path = write_file("ids.txt", f"{runs['young'].id}\n{runs['recent'].id}\n")
    res = cli(emu, "run", "--ids-file", path, *fast)
    assert res.code == 0, res.stderr
    assert {r.run_id for r in emu.deletes()} == {runs["recent"].id}
    assert reasons(res.report)[runs["young"].id][:2] == (False, "age_floor")


def test_ids_from_stdin_subprocess(emu_thread, cli_stdin, fast):
    """``--ids-file -`` reads stdin in a real process; only the eligible id is DELETEd."""
    emu = emu_thread(runs=0)
    runs = _stage(emu)
    code, _out, err, report = cli_stdin(emu, _ids_text(runs, ("ok", "finished", "young")),
                                        "run", "--ids-file", "-", "--older-than", "1h", *fast)
    assert code == 0, err
    assert {r.run_id for r in emu.deletes()} == {runs["ok"].id}
    assert report is not None
    assert {r["id"]: r["reason"] for r in report["runs"]}["deadbeefdeadbeefdeadbeefdeadbeef"] \
        == "not_found"


def test_ids_file_max_cancel_guard(emu_thread, cli, fast, write_file):
    """More eligible ids than --max-cancel: exit 4 and no DELETE at all."""
    emu = emu_thread(runs=0)
    runs = _stage(emu)
    path = write_file("ids.txt", "\n".join(runs[n].id for n in ("ok", "ok2", "not_listed")))
    res = cli(emu, "run", "--ids-file", path, "--max-cancel", "2", *fast)
    assert res.code == 4, res.stderr
    assert emu.deletes() == []


def test_ids_file_plan_never_deletes(emu_thread, cli, fast, write_file):
    """plan --ids-file fetches and reports would_cancel, sending no DELETE."""
    emu = emu_thread(runs=0)
    runs = _stage(emu)
    path = write_file("ids.txt", f"{runs['ok'].id}\n{runs['finished'].id}\n")
    res = cli(emu, "plan", "--ids-file", path, *fast)
    assert res.code == 0, res.stderr
    assert emu.deletes() == []
    assert res.outcomes() == {runs["ok"].id: "would_cancel"}


def test_missing_ids_file_is_a_config_error(emu_thread, cli, tmp_path):
    """An unreadable ids file exits 2 before any request."""
    emu = emu_thread(runs=0)
    res = cli(emu, "run", "--ids-file", str(tmp_path / "nope.txt"))
    assert res.code == 2, res.stderr
    assert "run.ids_file" in res.stderr
    assert emu.records == []


def test_read_ids_parses_comments_blanks_duplicates():
    """Blank lines and comments are skipped, duplicates dropped, order kept; stdin via '-'."""
    text = "# header\n\nb1\n a2  # trailing\nb1\n\t\n"
    assert read_ids("-", io.StringIO(text)) == ["b1", "a2"]


def test_read_ids_rejects_two_ids_on_a_line():
    """A line with two tokens is refused with its line number (no guessing)."""
    with pytest.raises(ConfigError, match="line 2"):
        read_ids("-", io.StringIO("ok\nid1 id2\n"))
