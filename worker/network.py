"""The network around a job: which proxy each outbound URL goes through, and which CAs it trusts.

One policy for every outbound call (API, token, webhook, Pushgateway), built once from the
config before any network call:

- Proxy: ``target.proxy`` (flag ``--proxy``, env ``ZUORA_REAPER_PROXY``, file) when set, else
  the standard environment: ``https_proxy``/``HTTPS_PROXY`` for https URLs,
  ``http_proxy``/``HTTP_PROXY`` for http URLs, ``all_proxy``/``ALL_PROXY`` for both; the
  lower-case name wins, as curl and Python's ``urllib`` read them. ``NO_PROXY`` (a comma list of
  hosts, ``.domain`` suffixes, ``host:port`` or ``*``) sends a host direct in every case.
  ``target.proxy = "none"`` goes direct whatever the environment says.
- Trust: the system store (``SSL_CERT_FILE``/``SSL_CERT_DIR`` keep working, as OpenSSL reads
  them) plus ``target.ca_file``, a PEM bundle, when set.

Proxy credentials (``http://user:pass@proxy:3128``) are accepted from the environment only and
never printed (``describe`` masks them); the password is handed to the redactor.

Why our own code: aiohttp reads the proxy environment only with ``trust_env``, which also reads
``~/.netrc`` and cannot be overridden per job, and prometheus_client's push goes through urllib;
one small policy object serves both.
"""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from worker.errors import ConfigError
from worker.logs import hide_url

PROXY_KEY = "target.proxy"
CA_KEY = "target.ca_file"
DIRECT = "none"
PROXY_SCHEMES = ("http", "https")
MAX_CA_FILE_BYTES = 4 * 1024 * 1024  # a system bundle is ~200 KB


@dataclass(frozen=True, slots=True)
class Network:
    """Proxies by URL scheme, the hosts that go direct, and the extra CA bundle."""

    http_proxy: str | None = None
    https_proxy: str | None = None
    no_proxy: str = ""
    ca_file: str | None = None
    proxy_source: str = "none"  # where the proxies came from, for check and explain

    def proxy_for(self, url: str) -> str | None:
        """The proxy URL to send ``url`` through, or None to go direct."""
        parts = urlsplit(url)
        proxy = self.https_proxy if parts.scheme == "https" else self.http_proxy
        if proxy is None or not parts.hostname:
            return None
        if self.no_proxy and bypasses(self.no_proxy, parts.hostname, parts.port):
            return None
        return proxy

    def secrets(self) -> list[str]:
        """Proxy passwords, decoded and as written in the URL; the redactor adds the other
        forms they may be echoed in (``logs.secret_forms``). A user name is not a secret:
        scrubbing ``jsmith`` turned a ``--created-by jsmith@corp`` filter into ``***@corp``."""
        out: list[str] = []
        for proxy in {self.http_proxy, self.https_proxy} - {None}:
            password = urlsplit(str(proxy)).password
            if password:
                out += [unquote(password), password]
        return list(dict.fromkeys(out))

    def describe(self) -> str:
        """One line for ``check`` and ``explain``: which proxy is used, credentials masked."""
        if self.http_proxy is None and self.https_proxy is None:
            return "direct (no proxy)"
        shown = [f"{scheme} via {hide_url(proxy, show='all_but_user')}" for scheme, proxy
                 in (("https", self.https_proxy), ("http", self.http_proxy)) if proxy]
        bypass = f"; direct for NO_PROXY={self.no_proxy}" if self.no_proxy else ""
        return f"{', '.join(shown)} (from {self.proxy_source}){bypass}"

    def describe_trust(self) -> str:
        """One line for ``check`` and ``explain``: which CAs are trusted."""
        extra = f" + {self.ca_file} (target.ca_file)" if self.ca_file else ""
        return f"the system store (SSL_CERT_FILE / SSL_CERT_DIR if set){extra}"

    def ssl_context(self) -> ssl.SSLContext:
        """A verifying client context: the system store plus ``ca_file``."""
        context = ssl.create_default_context()
        if self.ca_file:
            context.load_verify_locations(cafile=self.ca_file)
        return context


def bypasses(no_proxy: str, host: str, port: int | None) -> bool:
    """True when ``NO_PROXY`` sends ``host`` direct, as curl reads it: ``*`` for every host; a
    name for itself and its subdomains (a leading dot is optional); an IP address or CIDR
    block for the addresses in it; ``:port`` after either for that port only."""
    host = host.lower().rstrip(".")
    for entry in (e.strip().lower() for e in no_proxy.split(",")):
        if entry == "*":
            return True
        name, want_port = _entry_port(entry)
        if not name or (want_port is not None and want_port != port):
            continue
        if _matches(name, host):
            return True
    return False


def _entry_port(entry: str) -> tuple[str, int | None]:
    if entry.startswith("["):  # [v6]:port
        name, _, rest = entry[1:].partition("]")
        return name, int(rest[1:]) if rest[1:].isdigit() else None
    name, sep, port = entry.rpartition(":")
    if sep and port.isdigit() and ":" not in name:
        return name, int(port)
    return entry, None


def _matches(name: str, host: str) -> bool:
    try:
        network = ipaddress.ip_network(name, strict=False)
    except ValueError:
        name = name.lstrip(".").rstrip(".")
        return host == name or host.endswith("." + name)
    try:
        return ipaddress.ip_address(host.strip("[]")) in network
    except ValueError:
        return False


def network_from(values: Mapping[str, object], sources: Mapping[str, str],
                 env: Mapping[str, str]) -> Network:
    """Build the policy from ``target.proxy``/``target.ca_file`` and the proxy environment."""
    ca_file = values.get(CA_KEY)
    ca = check_ca_file(str(ca_file)) if ca_file else None
    explicit = values.get(PROXY_KEY)
    no_proxy = _env(env, "no_proxy") or ""
    if explicit:
        text = str(explicit)
        if text.lower() == DIRECT:
            return Network(ca_file=ca, proxy_source=f"{PROXY_KEY}=none")
        proxy = check_proxy_url(PROXY_KEY, text, secrets_allowed=sources.get(PROXY_KEY) == "env")
        return Network(proxy, proxy, no_proxy, ca, PROXY_KEY)
    every = _env(env, "all_proxy")
    http, https = _env(env, "http_proxy") or every, _env(env, "https_proxy") or every
    return Network(
        check_proxy_url("HTTP_PROXY", http, secrets_allowed=True) if http else None,
        check_proxy_url("HTTPS_PROXY", https, secrets_allowed=True) if https else None,
        no_proxy, ca, "the environment" if http or https else "none")


def _env(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name) or env.get(name.upper())
    return value.strip() if value and value.strip() else None


def check_proxy_url(where: str, url: str, *, secrets_allowed: bool) -> str:
    """A proxy URL: http(s)://[user:pass@]host[:port]; a bare host:port means http://.

    Never echoes the URL (it may hold credentials). User info is allowed only where secrets
    may come from (the environment)."""
    text = url.strip()
    if "://" not in text:
        text = "http://" + text
    parts = urlsplit(text)
    if parts.scheme not in PROXY_SCHEMES or not parts.hostname:
        raise ConfigError(where, "must be a proxy URL like http://proxy.example:3128; allowed "
                                 f"schemes: {', '.join(PROXY_SCHEMES)}"
                                 f"{'; or none to go direct' if where == PROXY_KEY else ''}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(where, "must be scheme://host:port with no path or query")
    try:
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise ConfigError(where, "has an invalid port") from exc
    if (parts.username or parts.password) and not secrets_allowed:
        raise ConfigError(where, "proxy credentials are secrets: set the proxy URL with "
                                 "user:password@ in the environment (ZUORA_REAPER_PROXY or "
                                 "HTTPS_PROXY), never in a flag or the config file")
    return text


def check_ca_file(path: str) -> str:
    """The path of a readable PEM bundle that OpenSSL accepts; else a ConfigError (exit 2)."""
    file = Path(path)
    try:
        if not file.is_file():
            raise ConfigError(CA_KEY, f"{path} is not a regular file; give a PEM bundle of CA "
                                      "certificates (--ca-file)")
        if file.stat().st_size > MAX_CA_FILE_BYTES:
            raise ConfigError(CA_KEY, f"{path} is larger than {MAX_CA_FILE_BYTES // 2**20} MiB; "
                                      "give a PEM bundle of CA certificates")
        ssl.create_default_context().load_verify_locations(cafile=path)
    except ssl.SSLError as exc:
        raise ConfigError(CA_KEY, f"{path} holds no PEM CA certificate OpenSSL can read "
                                  f"({exc.reason or exc})") from exc
    except OSError as exc:
        raise ConfigError(CA_KEY, f"cannot read {path}: {exc.strerror}") from exc
    return path
