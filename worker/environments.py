"""Zuora environments (zuora-api.md §4): names for ``--environment`` and their hosts."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Environment:
    """One Zuora environment: the REST host (OAuth) and the legacy zconnect host."""

    name: str
    rest: str
    legacy: str
    note: str = ""


ENVIRONMENTS: dict[str, Environment] = {
    env.name: env
    for env in (
        Environment("us-sandbox", "https://rest.apisandbox.zuora.com",
                    "https://zconnectsandbox.zuora.com", "API Sandbox, US Cloud DC 2"),
        Environment("us-production", "https://rest.zuora.com",
                    "https://zconnect.zuora.com", "Production, US Cloud DC 2"),
        Environment("us-cloud-1-sandbox", "https://rest.sandbox.na.zuora.com",
                    "https://zconnect.sandbox.na.zuora.com", "API Sandbox, US Cloud DC 1"),
        Environment("us-cloud-1-production", "https://rest.na.zuora.com",
                    "https://zconnect.na.zuora.com", "Production, US Cloud DC 1"),
        Environment("eu-sandbox", "https://rest.sandbox.eu.zuora.com",
                    "https://zconnect.sandbox.eu.zuora.com", "API Sandbox, EU"),
        Environment("eu-production", "https://rest.eu.zuora.com",
                    "https://zconnect.eu.zuora.com", "Production, EU"),
        Environment("us-central-sandbox", "https://rest.test.zuora.com",
                    "https://zconnect-services0001.test.zuora.com", "US Central Sandbox"),
        Environment("eu-central-sandbox", "https://rest.test.eu.zuora.com",
                    "https://zconnect-services0002.test.eu.zuora.com", "EU Central Sandbox"),
        Environment("apac-sandbox", "https://rest.test.ap.zuora.com",
                    "https://zconnect-services0003.test.ap.zuora.com",
                    "APAC Developer and Central Sandbox (legacy host unverified)"),
        Environment("apac-production", "https://rest.ap.zuora.com",
                    "https://zconnect-prod05.ap.zuora.com",
                    "APAC Production (docs print plain http; https assumed, unverified)"),
    )
}


def base_url_for(name: str, auth: str) -> str:
    """Return the host root for environment ``name`` under auth mode ``oauth`` or ``legacy``.

    Raises ``KeyError`` for an unknown name (the config layer turns it into a ConfigError).
    """
    env = ENVIRONMENTS[name]
    return env.legacy if auth == "legacy" else env.rest
