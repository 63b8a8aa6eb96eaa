"""Local files as an attacker on the same machine would test them: symlinks and device nodes at
the lock, report, plan and metrics paths, and /dev/zero as every input file."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from worker.cli import main
from worker.config import load_settings
from worker.emulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET
from worker.errors import ConfigError
from worker.files import write_atomic
from worker.listing import read_ids
from worker.lock import job_lock, lock_dir

FAST = ("--rate", "1000", "--older-than", "1h")
ENV = {"ZUORA_CLIENT_ID": DEMO_CLIENT_ID, "ZUORA_CLIENT_SECRET": DEMO_CLIENT_SECRET}


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    path = tmp_path / "precious.txt"
    path.write_text("do not truncate me\n")
    return path


def _settings(tmp_path: Path, **flags: str):
    return load_settings("run", {"target.base_url": "https://rest.zuora.com", **flags}, ENV)


def test_lock_file_symlink_is_refused_and_its_target_untouched(tmp_path, victim, cli, emu_thread):
    emu = emu_thread(runs=0)
    link = tmp_path / "job.lock"
    link.symlink_to(victim)
    res = cli(emu, "run", *FAST, "--lock-file", str(link))
    assert res.code == 2
    assert "a symlink" in res.stderr
    assert victim.read_text() == "do not truncate me\n"
    assert emu.records == []


def test_lock_file_of_foreign_content_is_never_truncated(tmp_path, victim, cli, emu_thread):
    emu = emu_thread(runs=0)
    res = cli(emu, "run", *FAST, "--lock-file", str(victim))
    assert res.code == 2
    assert "is not a zuora-reaper lock file" in res.stderr
    assert victim.read_text() == "do not truncate me\n"
    assert emu.records == []


def test_device_node_as_lock_file_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="not a regular file"), \
            job_lock(_settings(tmp_path, **{"run.lock_file": "/dev/null"})):
        pass


def test_default_lock_directory_is_private(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    path = lock_dir()
    assert path == str(tmp_path / "zuora-reaper")
    info = os.lstat(path)
    assert stat.S_IMODE(info.st_mode) == 0o700
    assert info.st_uid == os.getuid()
    with job_lock(_settings(tmp_path)) as lock:
        assert lock.startswith(path + os.sep)


@pytest.mark.parametrize("kind", ["world-writable", "symlink"])
def test_an_unsafe_lock_directory_is_refused(tmp_path, monkeypatch, kind):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    planted = tmp_path / "zuora-reaper"
    if kind == "symlink":
        (tmp_path / "elsewhere").mkdir(mode=0o700)
        planted.symlink_to(tmp_path / "elsewhere")
    else:
        planted.mkdir()
        planted.chmod(0o777)
    with pytest.raises(ConfigError, match="not a private directory"):
        lock_dir()


@pytest.mark.parametrize("option", ["--report-file", "--plan-out", "--metrics-file"])
@pytest.mark.parametrize("kind", ["symlink", "device"])
def test_outputs_never_replace_what_is_not_a_regular_file(tmp_path, victim, emu_thread,
                                                          monkeypatch, capsys, option, kind):
    """A symlink (say to /dev/stdout or a file of value) or a device node at an output path:
    exit 2 before any request, nothing replaced."""
    emu = emu_thread(runs=0)
    path = tmp_path / "out"
    if kind == "symlink":
        path.symlink_to(victim)
    else:
        path = Path("/dev/null")
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    command = "plan" if option == "--plan-out" else "run"
    code = main([command, "--base-url", emu.base_url, *FAST, option, str(path),
                 "--lock-file", str(tmp_path / "lock")])
    assert code == 2
    assert "refusing to replace it" in capsys.readouterr().err
    assert emu.records == []
    assert victim.read_text() == "do not truncate me\n"
    if kind == "symlink":
        assert path.is_symlink()
    else:
        assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_write_time_check_catches_a_symlink_planted_after_the_config_check(tmp_path, victim):
    link = tmp_path / "report.json"
    link.symlink_to(victim)
    with pytest.raises(OSError, match="a symlink: refusing to replace it"):
        write_atomic(str(link), "{}")
    assert link.is_symlink()


@pytest.mark.parametrize(("args", "env_extra", "key"), [
    (("--config", "/dev/zero"), {}, "--config"),
    (("--ids-file", "/dev/zero"), {}, "run.ids_file"),
    (("--plan", "/dev/zero"), {}, "run.plan"),
    ((), {"ZUORA_CLIENT_SECRET_FILE": "/dev/zero"}, "ZUORA_CLIENT_SECRET_FILE"),
    (("--ca-file", "/dev/zero"), {}, "target.ca_file"),
])
def test_dev_zero_as_an_input_file_is_a_clear_config_error(cli, emu_thread, args, env_extra, key):
    emu = emu_thread(runs=0)
    env = dict(ENV) if not env_extra else {"ZUORA_CLIENT_ID": DEMO_CLIENT_ID, **env_extra}
    res = cli(emu, "run", *FAST, *args, env=env)
    assert res.code == 2, res.stderr
    assert key in res.stderr
    assert emu.records == []


def test_an_undecodable_config_file_is_a_config_error(cli, tmp_path):
    config = tmp_path / "utf16.toml"
    config.write_text("[pacing]\nrate = 5\n", encoding="utf-16")
    res = cli(None, "plan", "--base-url", "https://rest.zuora.com", "--config", str(config))
    assert res.code == 2
    assert "not UTF-8 text" in res.stderr


@pytest.mark.parametrize("key", ["output.report_file", "run.plan_out", "output.metrics_file",
                                 "run.lock_file"])
def test_an_output_in_a_missing_folder_is_refused_not_created(tmp_path, key):
    """A typo in a folder name is an error before any request, and no folder appears."""
    path = tmp_path / "no-such-folder" / "out.json"
    command = "plan" if key == "run.plan_out" else "run"
    creds = {"ZUORA_CLIENT_ID": DEMO_CLIENT_ID, "ZUORA_CLIENT_SECRET": DEMO_CLIENT_SECRET}
    with pytest.raises(ConfigError, match=r"the folder .*no-such-folder does not exist"):
        load_settings(command, {"target.base_url": "https://rest.zuora.com", key: str(path)},
                      creds)
    assert not path.parent.exists()


@pytest.mark.parametrize("key", ["output.report_file", "run.lock_file"])
def test_a_path_with_a_nul_character_is_a_config_error(key):
    """Found by the config fuzz test: a NUL in a path raised ValueError (a traceback)."""
    creds = {"ZUORA_CLIENT_ID": DEMO_CLIENT_ID, "ZUORA_CLIENT_SECRET": DEMO_CLIENT_SECRET}
    flags = {"target.base_url": "https://rest.zuora.com", key: "a\x00b"}
    with pytest.raises(ConfigError, match=r"NUL character"):
        load_settings("run", flags, creds)


def test_an_input_path_with_a_nul_character_is_a_config_error():
    with pytest.raises(ConfigError, match=r"run.ids_file: .*NUL character"):
        read_ids("a\x00b")


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_outputs_get_the_mode_the_umask_gives(tmp_path, umask, mode):
    """A report or plan is made as open() would make it: 0666 less the umask (the deploy docs
    let UMask decide who may read it), never mkstemp's fixed 0600."""
    old = os.umask(umask)
    try:
        write_atomic(str(tmp_path / "report.json"), "{}")
        write_atomic(str(tmp_path / "report.json"), "{}")  # replacing one too
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "report.json").st_mode) == mode


def test_the_folder_is_synced_after_the_rename(tmp_path, monkeypatch):
    """The rename is made durable: the folder is fsynced after the file is in place."""
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    write_atomic(str(tmp_path / "plan.json"), "{}")
    assert synced == ["file", "dir"]
