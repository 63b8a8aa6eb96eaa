"""Zuora environments: every documented name resolves to its REST and zconnect hosts."""

from __future__ import annotations

from worker.config import load_settings
from worker.environments import ENVIRONMENTS, base_url_for

CREDS = {"ZUORA_CLIENT_ID": "id-0001", "ZUORA_CLIENT_SECRET": "secret-0001"}


def test_environment_names_map_to_hosts():
    """Every environment of zuora-api.md section 4 resolves, to zconnect hosts for legacy."""
    for name in ("us-production", "us-sandbox", "us-cloud-1-production", "us-cloud-1-sandbox",
                 "eu-production", "eu-sandbox", "us-central-sandbox", "eu-central-sandbox",
                 "apac-sandbox", "apac-production"):
        assert name in ENVIRONMENTS
    settings = load_settings("run", {"target.environment": "eu-production"}, CREDS)
    assert settings.target.base_url == "https://rest.eu.zuora.com"
    assert settings.target.api_root == "https://rest.eu.zuora.com/reporting/api/rest/v1"
    legacy = load_settings("run", {"target.environment": "us-production",
                                   "target.auth": "legacy"},
                           {"ZUORA_USERNAME": "u", "ZUORA_PASSWORD": "p"})
    assert legacy.target.base_url == "https://zconnect.zuora.com"
    assert legacy.target.api_root == "https://zconnect.zuora.com/api/rest/v1"


def test_base_url_for_picks_the_host_of_the_auth_mode():
    assert base_url_for("us-sandbox", "oauth") == "https://rest.apisandbox.zuora.com"
    assert base_url_for("us-sandbox", "legacy") == "https://zconnectsandbox.zuora.com"
