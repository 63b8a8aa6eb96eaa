"""Authentication: OAuth client credentials (cached, single-flight token) or legacy headers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from worker.api_bodies import describe
from worker.config import Settings, Target
from worker.errors import ApiError, AuthError, TransientError, UnusableResponse
from worker.http import Response, Transport
from worker.logs import REDACTOR, redact
from worker.retry import few_times, gave_up
from worker.secrets import Credentials

REFRESH_MARGIN = 300.0  # refresh this long before expiry (Zuora's error-handling sample does)
TOKEN_ATTEMPTS = 4


def _token_wait(attempt: int) -> float:
    """The wait after failed token attempt ``attempt``: 0.4, 0.8, 1.6 s."""
    return float(min(0.1 * 2 ** (attempt + 1), 2.0))


class Auth(Protocol):
    """Produces auth headers; ``refresh`` is called after a 401 with the token that failed."""

    async def headers(self) -> dict[str, str]: ...

    async def refresh(self, failed: dict[str, str]) -> None: ...

    @property
    def token_requests(self) -> int: ...


class LegacyAuth:
    """Username/password headers for the zconnect hosts; nothing to refresh."""

    def __init__(self, creds: Credentials) -> None:
        assert creds.username
        assert creds.password
        self._headers = {"apiAccessKeyId": creds.username, "apiSecretAccessKey": creds.password}
        if creds.entity_id:
            self._headers["entityId"] = creds.entity_id

    async def headers(self) -> dict[str, str]:
        return self._headers

    async def refresh(self, failed: dict[str, str]) -> None:
        raise AuthError("the API refused the legacy credentials (401): check ZUORA_USERNAME "
                        "and ZUORA_PASSWORD, and that the user has opened Reporting once",
                        status=401)

    @property
    def token_requests(self) -> int:
        return 0


class OAuth:
    """OAuth 2.0 client credentials. One token at a time; one refresh shared by every caller."""

    def __init__(self, target: Target, creds: Credentials, transport: Transport, *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 track_id: Callable[[], str] | None = None) -> None:
        assert creds.client_id
        assert creds.client_secret
        self._target, self._creds, self._transport = target, creds, transport
        self._clock, self._sleep, self._track_id = clock, sleep, track_id
        self._token: str | None = None
        self._failure: ApiError | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()
        self._requests = 0

    @property
    def token_requests(self) -> int:
        return self._requests

    async def headers(self) -> dict[str, str]:
        if self._token is None or self._clock() >= self._expires_at:
            async with self._lock:
                if self._token is None or self._clock() >= self._expires_at:
                    await self._fetch()
        assert self._token is not None
        out = {"Authorization": f"Bearer {self._token}"}
        if self._creds.entity_id:
            out["Zuora-Entity-Ids"] = self._creds.entity_id
        return out

    async def refresh(self, failed: dict[str, str]) -> None:
        """Fetch a new token unless another caller already replaced the one that failed."""
        async with self._lock:
            if failed.get("Authorization") == f"Bearer {self._token}":
                await self._fetch()

    async def _fetch(self) -> None:
        """Get a token; a token endpoint that cannot be reached raises ApiUnreachable.

        A refusal, a redirect, an unusable answer, or an endpoint still unreachable after its
        retries is final for the job: callers that queued behind the failed fetch get the same
        error, without asking again.
        """
        if self._failure is not None:
            raise self._failure
        try:
            await self._request_token()
        except ApiError as exc:  # TransientError never escapes _request_token
            self._failure = exc
            raise

    async def _request_token(self) -> None:
        """POST the client credentials, retrying a transient failure (``TOKEN_ATTEMPTS`` in
        all, 0.4/0.8/1.6 s apart); still failing, the endpoint is unreachable."""
        try:
            async for attempt in few_times(TOKEN_ATTEMPTS, _token_wait, self._sleep):
                with attempt:
                    resp = await self._post_token()
        except TransientError as exc:
            raise gave_up("the OAuth token request", TOKEN_ATTEMPTS, exc) from exc
        self._accept(resp)

    async def _post_token(self) -> Response:
        self._requests += 1
        headers = {"Zuora-Track-Id": self._track_id()} if self._track_id else {}
        form = {"client_id": self._creds.client_id or "",
                "client_secret": self._creds.client_secret or "",
                "grant_type": "client_credentials"}
        resp = await self._transport.send("POST", self._target.token_url, headers=headers,
                                          form=form)
        if resp.status in (429, 500, 502, 503, 504):
            raise TransientError(f"token endpoint answered {resp.status}: {describe(resp)}",
                                 status=resp.status)
        return resp

    def _accept(self, resp: Response) -> None:
        status, body = resp.status, resp.body
        if status != 200 or not isinstance(body, dict) or not isinstance(
                body.get("access_token"), str):
            detail = redact(describe(resp), self._creds.secrets())  # a server may echo it
            if refuses_credentials(resp):
                raise AuthError(f"the token endpoint refused the client credentials ({status}: "
                                f"{detail}); check ZUORA_CLIENT_ID and ZUORA_CLIENT_SECRET",
                                status=status)
            raise UnusableResponse(
                f"the token endpoint answered HTTP {status} ({detail}), neither a token nor a "
                "refusal of the credentials: check --base-url / --environment (and any proxy "
                "or captive portal in between)", status=status)
        try:
            lifetime = float(body.get("expires_in", 3600))
        except (TypeError, ValueError):
            lifetime = 3600.0
        margin = min(REFRESH_MARGIN, lifetime * 0.1)
        REDACTOR.add(body["access_token"])  # from now on in no output, whatever echoes it
        self._token = body["access_token"]
        self._expires_at = self._clock() + max(lifetime - margin, 1.0)


# OAuth 2.0 (RFC 6749 §5.2): what a token endpoint answers when it refuses the client itself
# (a malformed request, an unsupported grant or scope is no word on the credentials)
OAUTH_REFUSALS = frozenset({"invalid_client", "unauthorized_client", "invalid_grant"})


def refuses_credentials(resp: Response) -> bool:
    """A 401 or 403, or a JSON 400 with an OAuth error code: the credentials were refused.
    Anything else (a 404 page, a 200 without a token, a proxy's 400 page) is no word on the
    credentials, so it is not an authentication failure (exit 3) but an unusable answer."""
    if resp.status in (401, 403):
        return True
    body = resp.body
    return resp.status == 400 and isinstance(body, dict) and body.get("error") in OAUTH_REFUSALS


def make_auth(settings: Settings, transport: Transport,
              track_id: Callable[[], str] | None = None) -> Auth:
    """The job's auth: legacy headers or OAuth, as ``target.auth`` says."""
    if settings.target.auth == "legacy":
        return LegacyAuth(settings.credentials)
    return OAuth(settings.target, settings.credentials, transport, track_id=track_id)
