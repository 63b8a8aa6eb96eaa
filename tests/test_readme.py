"""The README's configuration reference and commands stay true to the code."""

from __future__ import annotations

from pathlib import Path

from worker.environments import ENVIRONMENTS
from worker.keys import KEYS

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_every_key_has_a_row_with_its_flag_and_env():
    """Each config key is documented in the README table with its own flag and env variable."""
    rows = {line.split("|")[1].strip(" `"): line for line in README.splitlines()
            if line.startswith("| `") and "." in line.split("|")[1]}
    for key in KEYS:
        assert key.name in rows, key.name
        assert f"`{key.env}`" in rows[key.name], key.name
        if key.cli_flag:
            assert key.cli_flag in rows[key.name], key.name


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
