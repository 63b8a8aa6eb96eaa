"""config.example.toml documents every key, with the true default and its flag/env names."""

from __future__ import annotations

import re
from pathlib import Path

from worker.config import load_settings
from worker.keys import KEYS

EXAMPLE = Path(__file__).resolve().parent.parent / "config.example.toml"


def _uncomment_keys(text: str) -> str:
    """Uncomment every ``# field = value`` line of a known key in its own section."""
    out, section = [], None
    for line in text.splitlines():
        header = re.fullmatch(r"\[(\w+)\]", line)
        if header:
            section = header.group(1)
        match = re.fullmatch(r"# (\w+) = (.+)", line)
        known = {k.field for k in KEYS if k.section == section}
        if match and match.group(1) in known and match.group(2) != "(unset)":
            line = f"{match.group(1)} = {match.group(2)}"
        out.append(line)
    return "\n".join(out)


def test_every_key_is_documented_with_flag_and_env():
    """Each key appears with its field name, its flag and its environment variable."""
    text = EXAMPLE.read_text()
    for key in KEYS:
        assert re.search(rf"^# {key.field} = ", text, re.M), key.name
        assert key.env in text, key.env
        if key.cli_flag:
            assert key.cli_flag in text, key.cli_flag


def test_documented_defaults_are_the_real_defaults(tmp_path):
    """Uncommenting every documented value changes nothing: the file states the true defaults."""
    path = tmp_path / "all.toml"
    path.write_text(_uncomment_keys(EXAMPLE.read_text()))
    env = {"ZUORA_CLIENT_ID": "id", "ZUORA_CLIENT_SECRET": "secret"}
    from_file = load_settings("plan", {"target.base_url": "http://127.0.0.1:1"}, env, str(path))
    defaults = load_settings("plan", {"target.base_url": "http://127.0.0.1:1"}, env, None)
    assert from_file.values == defaults.values
    documented = [k.name for k in KEYS if k.default is not None]
    assert all(from_file.sources[name] == "file" for name in documented)
