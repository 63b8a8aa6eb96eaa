"""The README's configuration reference and commands stay true to the code."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from worker.config import BY_STATUS, BY_STATUS_ENV
from worker.durations import format_duration
from worker.emulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET
from worker.environments import ENVIRONMENTS
from worker.keys import KEYS, Key

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _default(key: Key) -> str:
    value = key.default
    if value is None:
        return "-"
    if key.kind == "bool":
        return "true" if value else "false"
    if key.kind == "duration":
        return format_duration(float(value))
    if isinstance(value, list | tuple):
        return ", ".join(value) if value else "(any)"
    return str(value)


def reference_row(key: Key) -> str:
    """The README row of ``key``, made from ``worker/keys.py``: name, flag, variable, default
    and meaning can only say what the code does."""
    repeat = " (repeatable)" if key.kind == "list" or key.name == "filters.older_than" else ""
    flag = f"`{key.cli_flag}{repeat}`" if key.cli_flag else "-"
    choices = f" ({'/'.join(key.choices)})" if key.choices and key.kind == "choice" else ""
    return f"| `{key.name}` | {flag} | `{key.env}` | {_default(key)} | {key.help}{choices} |"


def test_every_key_has_its_row_made_from_the_code():
    """Each config key's README row is exactly what keys.py says (its default and meaning
    drifted before: a page size of 100 documented after the default became 250)."""
    rows = {line.split("|")[1].strip(" `"): line for line in README.splitlines()
            if line.startswith("| `") and "." in line.split("|")[1]}
    for key in KEYS:
        assert rows.get(key.name) == reference_row(key), key.name
    assert f"`{BY_STATUS_ENV}`" in rows[BY_STATUS]  # the per-status table, env and file


def test_every_environment_is_documented():
    """Each --environment name is listed in the README."""
    for name in ENVIRONMENTS:
        assert f"`{name}`" in README, name


def test_the_two_newcomer_commands_are_stated():
    """The README states the demo command and the test command a newcomer runs."""
    assert "pip install . && zuora-reaper demo" in README
    assert "pip install -e '.[test]' && pytest" in README


def test_networks_section_states_the_real_limits():
    """The README's Networks section states the limits worker.http enforces."""
    from worker.http import MAX_BODY_BYTES, MAX_HEADERS, MAX_JSON_DEPTH, MAX_LINE_SIZE

    section = README.split("## Networks", 1)[1].split("\n## ", 1)[0]
    assert f"| header fields per answer | {MAX_HEADERS} " in section
    assert f"| bytes per status or header line | {MAX_LINE_SIZE} " in section
    assert f"| body, after decompression | {MAX_BODY_BYTES // 2**20} MiB " in section
    assert f"| JSON nesting | {MAX_JSON_DEPTH} levels " in section
    for words in ("HTTPS_PROXY", "NO_PROXY", "--proxy none", "--ca-file", "SSL_CERT_FILE",
                  "Redirects are never followed"):
        assert words in section, words


DOCS = [README, (ROOT / "deploy" / "README.md").read_text()]


def test_every_test_path_the_docs_name_exists():
    """A check the docs point to must exist (deploy/README named tests/ops/test_deploy.py,
    three times, and there was none)."""
    named = {m for doc in DOCS for m in re.findall(r"tests/[\w/]+\.py", doc)}
    assert named
    for path in named:
        assert (ROOT / path).is_file(), path


def test_plan_help_lists_every_environment_the_demo_points_to():
    """The demo says 'every environment name: zuora-reaper plan --help': it is there."""
    out = subprocess.run([sys.executable, "-m", "worker", "plan", "--help"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    for name in ENVIRONMENTS:
        assert name in out, name


def runnable_blocks(text: str) -> list[str]:
    """The fenced blocks the docs mark ``<!-- runnable... -->`` (the line before the fence)."""
    return re.findall(r"^<!-- runnable[^>]*-->\n```sh\n(.*?)^```", text, re.M | re.S)


@pytest.mark.parametrize("doc", ["README.md", "deploy/README.md"])
def test_every_runnable_command_in_the_docs_exits_0(emu_thread, tmp_path, doc):
    """Each command of a block the docs mark runnable runs, as written, against an emulator
    (the variables its banner exports), and exits 0: the docs cannot promise a command that
    does not work."""
    blocks = runnable_blocks((ROOT / doc).read_text())
    if doc == "README.md":
        assert blocks, "the README marks its emulator walk-through runnable"
    emu = emu_thread(runs=40, seed=3)
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(tmp_path),
           "ZUORA_REAPER_BASE_URL": emu.base_url, "ZUORA_CLIENT_ID": DEMO_CLIENT_ID,
           "ZUORA_CLIENT_SECRET": DEMO_CLIENT_SECRET, "ZUORA_REAPER_LOCK_FILE":
           str(tmp_path / "job.lock")}
    for block in blocks:
        for command in block.replace("\\\n", " ").splitlines():
            if not command.strip() or command.lstrip().startswith("#"):
                continue
            proc = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env,
                                  capture_output=True, text=True, timeout=120, check=False)
            assert proc.returncode == 0, f"{command}\n{proc.stderr[-2000:]}"
