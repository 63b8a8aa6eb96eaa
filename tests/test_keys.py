"""The key table: one default per knob, read by every class that takes the knob."""

from __future__ import annotations

import dataclasses

import pytest

from worker import config
from worker.config import load_settings
from worker.keys import KEYS, KEYS_BY_NAME, default_of
from worker.pacer import PacerConfig
from worker.retry import RetryBudget, RetryPolicy

ENV = {"ZUORA_CLIENT_ID": "id", "ZUORA_CLIENT_SECRET": "secret"}


def test_default_of_reads_the_table_and_gives_lists_as_tuples():
    assert default_of("pacing.rate") == KEYS_BY_NAME["pacing.rate"].default
    assert default_of("filters.statuses") == tuple(KEYS_BY_NAME["filters.statuses"].default)
    with pytest.raises(KeyError):
        default_of("pacing.nope")


@pytest.mark.parametrize(("cls", "section"), [
    (config.Pacing, "pacing"), (config.Listing, "listing"), (config.Output, "output"),
    (config.RunOptions, "run")])
def test_settings_dataclass_defaults_are_the_key_defaults(cls, section):
    """A section built with no values equals the one load_settings builds from the table."""
    settings = load_settings("plan", {"target.base_url": "https://rest.zuora.com"}, ENV)
    built = getattr(settings, "run" if section == "run" else section)
    assert cls() == built
    for f in dataclasses.fields(cls):
        assert f.default == default_of(f"{section}.{f.name}"), f.name


def test_knob_taking_classes_default_to_the_key_table():
    assert (PacerConfig().rate, PacerConfig().concurrency, PacerConfig().quota_share) == (
        default_of("pacing.rate"), default_of("pacing.concurrency"),
        default_of("pacing.quota_share"))
    assert RetryPolicy().max_attempts == default_of("pacing.max_attempts")
    assert RetryBudget().available == default_of("pacing.retry_budget")


def test_every_key_has_a_section_field_and_a_distinct_env_name():
    envs = [key.env for key in KEYS]
    assert len(envs) == len(set(envs))
    assert all(key.section and key.field for key in KEYS)
