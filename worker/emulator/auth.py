"""OAuth token issue and the two auth schemes (bearer, legacy API key headers)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from .config import EmulatorConfig
from .replies import Reply, auth_error, zan_error
from .state import State


def issue_token(state: State, config: EmulatorConfig, form: Mapping[str, str]) -> Reply:
    """POST /oauth/token with client_credentials."""
    if form.get("grant_type") != "client_credentials":
        return Reply(400, {"message": "Unsupported grant_type"})
    if form.get("client_id") != config.client_id or form.get("client_secret") != (
        config.client_secret
    ):
        return auth_error()
    token = state.issue_token(config.clock() + config.token_ttl)
    entity = config.entity_id or "00000000-0000-0000-0000-000000000000"
    body = {
        "access_token": token,
        "token_type": "bearer",
        "expires_in": int(config.token_ttl),
        "scope": f"user.demo entity.{entity} tenant.19",
        "jti": uuid.uuid4().hex,
    }
    return Reply(200, body)


def check_auth(
    state: State, config: EmulatorConfig, headers: Mapping[str, str], legacy: bool
) -> Reply | None:
    """None when the request may proceed, else the 401/403 Reply."""
    if legacy:
        ok = (
            headers.get("apiAccessKeyId") == config.username
            and headers.get("apiSecretAccessKey") == config.password
        )
    else:
        scheme, _, token = headers.get("Authorization", "").partition(" ")
        ok = scheme.lower() == "bearer" and state.token_valid(token.strip(), config.clock())
    if not ok:
        return auth_error()
    return _check_entity(config, headers, legacy)


def _check_entity(config: EmulatorConfig, headers: Mapping[str, str], legacy: bool) -> Reply | None:
    if config.entity_id is None:
        return None
    sent = headers.get("entityId" if legacy else "Zuora-Entity-Ids")
    if sent == config.entity_id:
        return None
    return zan_error(403, f"Access to entity {sent!r} is not allowed for this user.")
