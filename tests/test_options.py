"""The command line's options: each command's own, grouped, with human defaults and env names;
--version; no prefix abbreviations; an unknown command names the commands."""

from __future__ import annotations

import re

import pytest

from worker import __version__
from worker.cli import main
from worker.keys import KEYS
from worker.options import takes


def _help(capsys: pytest.CaptureFixture[str], command: str) -> str:
    assert main([command, "--help"]) == 0
    return capsys.readouterr().out


def _flags(text: str) -> set[str]:
    return set(re.findall(r"^  (--[a-z-]+)", text, re.M))


@pytest.mark.parametrize("command", ["plan", "run", "check", "explain"])
def test_help_shows_only_the_commands_options_with_env_and_human_defaults(capsys, command):
    text = _help(capsys, command)
    expected = {k.cli_flag for k in KEYS if takes(command, k)} | {"--config"}
    assert _flags(text) == expected
    flat = " ".join(text.split())
    for key in KEYS:
        if takes(command, key):
            assert f"Env: {key.env}" in flat, key.name
    assert "None" not in text
    assert "['" not in text
    assert "300.0" not in text
    assert "examples:" in text
    for title in ("target:", "output:"):
        assert title in text


def test_each_command_takes_only_its_own_options(capsys):
    plan, run, check = (_flags(_help(capsys, c)) for c in ("plan", "run", "check"))
    assert "--plan-out" in plan
    assert "--plan" not in plan
    assert "--plan" in run
    assert "--plan-out" not in run
    assert not {"--older-than", "--max-cancel", "--plan", "--notify-webhook"} & check


def test_defaults_in_human_units_and_repeatables_marked(capsys):
    text = " ".join(_help(capsys, "run").split())
    assert "Default: 5m. Env: ZUORA_REAPER_MIN_AGE" in text
    assert "Default: 1h. Env: ZUORA_REAPER_PLAN_MAX_AGE" in text
    assert "statuses to select (repeatable). Default: STARTED, QUERYDATA, PROCESSINGDATA" in text
    assert "--status STATUS" in text
    assert "--older-than DURATION" in text
    assert "Default: 10. Env: ZUORA_REAPER_RATE" in text


def test_version_comes_from_the_package_metadata(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"zuora-reaper {__version__}"


def test_no_prefix_abbreviations(capsys):
    assert main(["plan", "--older", "2h", "--base-url", "https://rest.zuora.com"]) == 2
    assert "unrecognized arguments: --older" in capsys.readouterr().err


def test_an_unknown_command_names_the_commands(capsys):
    assert main(["cancel", "--older-than", "2h"]) == 2
    err = capsys.readouterr().err
    assert "unknown command 'cancel'" in err
    assert "plan, run, check, explain, spare, history, demo, emulator" in err
