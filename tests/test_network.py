"""The network policy (``worker.network``): which proxy a URL goes through, NO_PROXY, where the
proxy came from, what is masked, and the CA file check."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.errors import ConfigError
from worker.logs import Redactor, hide_url
from worker.network import Network, bypasses, check_ca_file, network_from


def _net(env: dict[str, str], proxy: str | None = None, source: str = "flag") -> Network:
    return network_from({"target.proxy": proxy}, {"target.proxy": source}, env)


@pytest.mark.parametrize(("env", "url", "want"), [
    ({"HTTPS_PROXY": "http://p:3128"}, "https://rest.zuora.com/x", "http://p:3128"),
    ({"HTTPS_PROXY": "http://p:3128"}, "http://127.0.0.1:8080/x", None),
    ({"HTTP_PROXY": "http://p:3128"}, "http://127.0.0.1:8080/x", "http://p:3128"),
    ({"https_proxy": "http://low:1", "HTTPS_PROXY": "http://up:2"}, "https://h/", "http://low:1"),
    ({"ALL_PROXY": "http://all:9"}, "https://h/", "http://all:9"),
    ({"ALL_PROXY": "http://all:9", "HTTP_PROXY": "http://p:1"}, "http://h/", "http://p:1"),
    ({"HTTPS_PROXY": "p.example:3128"}, "https://h/", "http://p.example:3128"),
    ({}, "https://h/", None),
])
def test_proxy_from_the_environment(env: dict[str, str], url: str, want: str | None) -> None:
    assert _net(env).proxy_for(url) == want


def test_target_proxy_overrides_the_environment_and_none_goes_direct() -> None:
    env = {"HTTPS_PROXY": "http://env:1", "HTTP_PROXY": "http://env:1"}
    explicit = _net(env, "http://mine:8080")
    assert explicit.proxy_for("https://h/") == "http://mine:8080"
    assert explicit.proxy_for("http://h/") == "http://mine:8080"
    assert explicit.proxy_source == "target.proxy"
    direct = _net(env, "none")
    assert direct.proxy_for("https://h/") is None
    assert direct.describe() == "direct (no proxy)"


@pytest.mark.parametrize(("no_proxy", "host", "port", "want"), [
    ("*", "anything.example", None, True),
    ("zuora.com", "rest.zuora.com", None, True),
    (".zuora.com", "rest.zuora.com", None, True),
    ("zuora.com", "notzuora.com", None, False),
    ("rest.zuora.com:443", "rest.zuora.com", 443, True),
    ("rest.zuora.com:8443", "rest.zuora.com", 443, False),
    ("127.0.0.0/8", "127.0.0.5", None, True),
    ("10.0.0.0/8", "127.0.0.1", None, False),
    ("::1", "::1", None, True),
    ("[::1]:8080", "::1", 8080, True),
    (" localhost , example.org ", "example.org", None, True),
    ("", "example.org", None, False),
])
def test_no_proxy_matching(no_proxy: str, host: str, port: int | None, want: bool) -> None:
    assert bypasses(no_proxy, host, port) is want


def test_no_proxy_applies_to_an_explicit_proxy_too() -> None:
    net = _net({"NO_PROXY": "internal.example"}, "http://mine:8080")
    assert net.proxy_for("https://api.internal.example/x") is None
    assert net.proxy_for("https://rest.zuora.com/x") == "http://mine:8080"


@given(st.from_regex(r"[a-z]{1,10}(\.[a-z]{1,10}){0,3}", fullmatch=True))
def test_a_host_always_bypasses_itself_and_its_subdomains(host: str) -> None:
    assert bypasses(host, host, None)
    assert bypasses(host, "sub." + host, None)
    assert not bypasses(host, "x" + host, None)


def test_credentials_are_masked_and_handed_to_the_redactor() -> None:
    net = _net({"HTTPS_PROXY": "http://me:p%40ss%20word@proxy:3128"})
    assert net.describe() == "https via http://***@proxy:3128 (from the environment)"
    secrets = Redactor(net.secrets()).secrets  # what the job's redactor knows of them
    for form in ("p@ss word", "p%40ss%20word", "p%40ss+word"):
        assert form in secrets
    assert "me" not in secrets  # a user name is not a secret (its password is)
    assert hide_url("http://proxy:3128", show="all_but_user") == "http://proxy:3128"


@pytest.mark.parametrize(("value", "words"), [
    ("socks5://p:1080", "allowed schemes: http, https"),
    ("http://p:3128/path", "no path or query"),
    ("http://p:notaport", "invalid port"),
    ("http://user:pw@p:3128", "proxy credentials are secrets"),
])
def test_bad_target_proxy_is_a_config_error_without_echo(value: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words) as caught:
        _net({}, value)
    assert caught.value.key == "target.proxy"
    assert "pw@" not in str(caught.value)


def test_proxy_credentials_from_the_environment_key_are_accepted() -> None:
    net = _net({}, "http://user:pw-long@p:3128", source="env")
    assert net.proxy_for("https://h/") == "http://user:pw-long@p:3128"


def test_ca_file_must_be_a_pem_bundle(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a regular file"):
        check_ca_file(str(tmp_path))
    with pytest.raises(ConfigError, match="not a regular file"):
        check_ca_file(str(tmp_path / "missing.pem"))
    junk = tmp_path / "junk.pem"
    junk.write_text("hello")
    with pytest.raises(ConfigError, match="no PEM CA certificate"):
        check_ca_file(str(junk))


def test_dev_zero_as_ca_file_is_refused_without_reading_it() -> None:
    with pytest.raises(ConfigError, match="not a regular file"):
        check_ca_file("/dev/zero")
