"""The CLI against servers nobody here wrote the client for: redirects, a forward proxy, TLS with
a private CA, hostile answers, and error pages of gateways (servers staged byte by byte in
``tests/support/staged.py``)."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest
from local import clean_env
from staged import (
    NGINX_502,
    PROBLEM_404,
    TOKEN,
    ForwardProxy,
    PrivateCA,
    Script,
    ScriptedZuora,
    answer,
    deep_json,
    endless_headers,
    fixed,
    gzip_bomb,
    long_header_line,
    make_ca,
    many_headers,
    redirect,
    run_item,
    status_page,
)

from worker.emulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET

ROOT = Path(__file__).resolve().parents[2]
FAST = ("--rate", "1000", "--concurrency", "4", "--older-than", "1h", "--attempt-timeout", "10s")
REDIRECTS = (301, 302, 303, 307, 308)
ENDPOINTS = ("token", "list", "get", "delete")


@pytest.fixture(scope="module")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> PrivateCA:
    return make_ca(tmp_path_factory.mktemp("ca"))


def _args_for(endpoint: str, tmp_path: Path) -> list[str]:
    """What makes the job reach ``endpoint``: GET needs --ids-file, DELETE needs run."""
    if endpoint == "get":
        ids = tmp_path / "ids.txt"
        ids.write_text("r1\n")
        return ["run", "--ids-file", str(ids)]
    return ["run" if endpoint == "delete" else "plan"]


# ---------------------------------------------------------------- redirects


@pytest.mark.parametrize("status", REDIRECTS)
@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("where", ["same", "other"])
def test_redirects_are_never_followed(zuora, cli, tmp_path, status, endpoint, where):
    """A 3xx on token, listing, GET or DELETE: nothing goes to Location, exit 6, and the message
    names the status and the Location's origin (never its path or query)."""
    other = zuora()
    server = zuora(Script(runs=[run_item("r1")]))
    target = other.origin if where == "other" else server.origin
    server.script.replies[endpoint] = redirect(status, f"{target}/elsewhere?token=leak")
    res = cli(None, *_args_for(endpoint, tmp_path), "--base-url", server.origin, *FAST)
    assert res.code == 6, res.stderr
    assert f"HTTP {status}, a redirect to {target}" in res.stderr
    assert "redirects are not followed" in res.stderr
    assert "elsewhere" not in res.stderr
    assert "leak" not in res.stderr
    assert other.requests == []
    assert not [r for r in server.requests if "elsewhere" in r.target]
    if endpoint == "delete":  # the run was listed: the report says it was not cancelled
        assert res.outcomes() == {"r1": "failed"}
        assert len(server.seen("delete")) == 1


def test_legacy_credentials_never_follow_a_redirect(zuora, cli):
    """The legacy headers (apiSecretAccessKey) are never sent to another origin."""
    other = zuora()
    server = zuora(Script(runs=[run_item("r1")]))
    server.script.replies["list"] = redirect(307, other.origin + "/api/rest/v1/reportruns")
    env = {"ZUORA_USERNAME": "api-user", "ZUORA_PASSWORD": "legacy-pass-1234"}
    res = cli(None, "plan", "--auth", "legacy", "--base-url", server.origin, *FAST, env=env)
    assert res.code == 6
    assert other.requests == []
    assert "legacy-pass-1234" not in res.stdout + res.stderr


def test_webhook_redirect_is_not_followed(zuora, cli):
    """A webhook answering 307 is not followed; the job's exit code does not change."""
    other = zuora()
    server = zuora(Script(runs=[run_item("r1")]))
    server.script.replies["other"] = redirect(307, other.origin + "/hook")
    res = cli(None, "run", "--base-url", server.origin, *FAST,
              "--notify-webhook", server.origin + "/hook")
    assert res.code == 0, res.stderr
    assert "notify.failed" in res.stderr
    assert other.requests == []


# ---------------------------------------------------------------- proxies


def _proxied(server: ScriptedZuora, proxy: ForwardProxy) -> set[str]:
    """The endpoints of ``server`` that went through ``proxy``."""
    prefix = f"{server.origin}"
    kinds = set()
    for line in proxy.seen:
        method, url = line.split(" ", 1)
        if not url.startswith(prefix):
            continue
        path = url[len(prefix):]
        kinds.add("token" if path == "/oauth/token" else
                  "list" if path.startswith("/reporting/api/rest/v1/reportruns?") else
                  "delete" if method == "DELETE" else
                  "webhook" if path == "/hook" else
                  "pushgateway" if path.startswith("/metrics/job/") else path)
    return kinds


@pytest.mark.parametrize("name", ["HTTP_PROXY", "http_proxy"])
def test_every_call_goes_through_the_proxy(zuora, cli, monkeypatch, name):
    """With HTTP_PROXY set, the token, listing, DELETE, webhook and Pushgateway calls all go
    through the proxy (absolute-form requests)."""
    server = zuora(Script(runs=[run_item("r1")]))
    with ForwardProxy() as proxy:
        monkeypatch.setenv(name, proxy.origin)
        res = cli(None, "run", "--base-url", server.origin, *FAST,
                  "--notify-webhook", server.origin + "/hook",
                  "--pushgateway", server.origin)
    assert res.code == 0, res.stderr
    assert _proxied(server, proxy) == {"token", "list", "delete", "webhook", "pushgateway"}


@pytest.mark.parametrize("no_proxy", ["127.0.0.1", "localhost,127.0.0.0/8", "*"])
def test_no_proxy_goes_direct(zuora, cli, monkeypatch, no_proxy):
    """A host in NO_PROXY never goes through the proxy, for any call."""
    server = zuora(Script(runs=[run_item("r1")]))
    with ForwardProxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.origin)
        monkeypatch.setenv("NO_PROXY", no_proxy)
        res = cli(None, "run", "--base-url", server.origin, *FAST,
                  "--notify-webhook", server.origin + "/hook",
                  "--pushgateway", server.origin)
    assert res.code == 0, res.stderr
    assert proxy.seen == []
    assert {"token", "list", "delete"} <= {e for e in ("token", "list", "delete")
                                           if server.seen(e)}
    assert any(r.path == "/hook" for r in server.requests)


@pytest.mark.slow
def test_https_goes_through_a_connect_tunnel_with_proxy_credentials(zuora, cli, monkeypatch,
                                                                    test_ca):
    """HTTPS_PROXY with credentials: a CONNECT tunnel to the target carrying them; the proxy
    password appears in no output; ``--proxy none`` goes direct."""
    server = zuora(Script(runs=[run_item("r1")]), tls=test_ca.server_context())
    url = f"https://localhost:{server.port}"
    with ForwardProxy(require="proxy-user:pr0xy-pa55word") as proxy:
        monkeypatch.setenv("HTTPS_PROXY", f"http://proxy-user:pr0xy-pa55word@{proxy.origin[7:]}")
        res = cli(None, "run", "--base-url", url, "--ca-file", test_ca.ca_file, *FAST)
        assert res.code == 0, res.stderr
        assert proxy.seen
        assert set(proxy.seen) == {f"CONNECT localhost:{server.port}"}
        assert proxy.auth[0] == "Basic " + base64.b64encode(b"proxy-user:pr0xy-pa55word").decode()
        assert "pr0xy-pa55word" not in res.stdout + res.stderr + json.dumps(res.report)
        tunnels = len(proxy.seen)
        direct = cli(None, "plan", "--base-url", url, "--ca-file", test_ca.ca_file,
                     "--proxy", "none", *FAST)
        assert direct.code == 0, direct.stderr
        assert len(proxy.seen) == tunnels


def test_proxy_refusal_is_exit_6_naming_the_proxy(zuora, cli, monkeypatch, test_ca):
    """A proxy answering 407 to CONNECT: exit 6, the message says it was the proxy."""
    server = zuora(Script(runs=[run_item("r1")]), tls=test_ca.server_context())
    with ForwardProxy(require="someone:else-entirely") as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.origin)
        res = cli(None, "plan", "--base-url", f"https://localhost:{server.port}",
                  "--ca-file", test_ca.ca_file, *FAST)
    assert res.code == 6
    assert "the proxy answered HTTP 407" in res.stderr


def test_check_and_explain_show_the_proxy_with_credentials_masked(zuora, cli, monkeypatch):
    server = zuora(Script(runs=[run_item("r1")]))
    with ForwardProxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", f"http://me:hunter2-secret@{proxy.origin[7:]}")
        monkeypatch.setenv("NO_PROXY", "example.invalid")
        checked = cli(None, "check", "--base-url", server.origin)
        explained = cli(None, "explain", "--base-url", server.origin)
    assert checked.code == 0, checked.stderr
    for res in (checked, explained):
        assert f"http via http://***@{proxy.origin[7:]}" in res.stdout
        assert "NO_PROXY=example.invalid" in res.stdout
        assert "hunter2-secret" not in res.stdout + res.stderr


@pytest.mark.parametrize(("where", "value"), [("--proxy", "http://u:p4ssw0rd@proxy:3128"),
                                              ("--proxy", "socks5://proxy:1080"),
                                              ("--proxy", "http://proxy:3128/path")])
def test_bad_proxy_values_are_config_errors(cli, where, value):
    """A proxy with credentials on the command line (secrets come from the environment only),
    another scheme, or a path: exit 2, and the value is never echoed."""
    res = cli(None, "plan", "--base-url", "https://rest.zuora.com", where, value)
    assert res.code == 2
    assert "target.proxy" in res.stderr
    assert "p4ssw0rd" not in res.stderr


# ---------------------------------------------------------------- TLS with a private CA


def test_private_ca_is_trusted_with_ca_file(zuora, cli, test_ca):
    server = zuora(Script(runs=[run_item("r1")]), tls=test_ca.server_context())
    res = cli(None, "run", "--base-url", f"https://localhost:{server.port}",
              "--ca-file", test_ca.ca_file, *FAST)
    assert res.code == 0, res.stderr
    assert res.outcomes() == {"r1": "cancelled"}


def test_private_ca_is_trusted_through_ssl_cert_file(zuora, cli, test_ca, monkeypatch):
    """SSL_CERT_FILE keeps working (OpenSSL reads it for the system store)."""
    server = zuora(Script(runs=[run_item("r1")]), tls=test_ca.server_context())
    monkeypatch.setenv("SSL_CERT_FILE", test_ca.ca_file)
    res = cli(None, "plan", "--base-url", f"https://localhost:{server.port}", *FAST)
    assert res.code == 0, res.stderr


@pytest.mark.parametrize(("cert", "host", "ca", "words"), [
    ("good", "localhost", False, "TLS certificate not trusted"),
    ("wrong_name", "localhost", True, "TLS host-name mismatch"),
    ("expired", "localhost", True, "TLS certificate expired"),
])
def test_tls_failures_say_which_failure(zuora, cli, test_ca, cert, host, ca, words):
    """Untrusted issuer, wrong host name, expired: exit 6, the right words, nothing retried."""
    server = zuora(Script(runs=[run_item("r1")]), tls=test_ca.server_context(cert))
    extra = ["--ca-file", test_ca.ca_file] if ca else []
    res = cli(None, "run", "--base-url", f"https://{host}:{server.port}", *extra, *FAST)
    assert res.code == 6, res.stderr
    assert words in res.stderr
    assert server.requests == []  # no request was ever sent over the refused connection


def test_plain_http_port_is_named_as_not_tls(zuora, cli):
    server = zuora(Script(runs=[run_item("r1")]))
    res = cli(None, "plan", "--base-url", f"https://127.0.0.1:{server.port}", *FAST)
    assert res.code == 6
    assert "the server did not answer TLS" in res.stderr


@pytest.mark.parametrize("content", [b"not a certificate\n", b""])
def test_unreadable_ca_file_is_a_config_error(cli, tmp_path, content):
    bad = tmp_path / "ca.pem"
    bad.write_bytes(content)
    res = cli(None, "plan", "--base-url", "https://rest.zuora.com", "--ca-file", str(bad))
    assert res.code == 2
    assert "target.ca_file" in res.stderr
    assert "PEM" in res.stderr


# ---------------------------------------------------------------- hostile answers


def _page_of(count: int) -> bytes:
    return answer({"success": True, "response": [run_item(f"x{i}") for i in range(count)]})


HOSTILE = {
    "endless headers": (endless_headers(), "more than 128 header fields"),
    "1 MB header line": (long_header_line(), "longer than 8190 bytes"),
    "10,000 headers": (many_headers(), "more than 128 header fields"),
    "gzip bomb": (gzip_bomb(), "passed the cap of"),  # 8 MiB; a listing page's is smaller
    "100k-deep JSON": (deep_json(), "nested deeper than 1024 levels"),
    # a page larger than asked is read (a server may ignore pageSize), up to 1,000 runs
    "more items than any page holds": (fixed(_page_of(1001)), "holds 1001 runs, more than the"),
}
CASES = [(case, "list2") for case in HOSTILE] + \
    [(case, "delete") for case in HOSTILE if case != "more items than any page holds"]


MEASURE = ("import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; "
           "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
           "sys.exit(code)")


def _run_measured(args: list[str], env: dict[str, str]) -> tuple[int, str, str, int]:
    """``python -m worker ARGS`` under a small wrapper that reports its child's peak RSS (MB).

    The wrapper: a child forked straight from pytest would inherit pytest's own peak RSS
    (Linux keeps ru_maxrss across fork and exec); forked from a fresh interpreter it starts
    small, so the figure is the job's."""
    proc = subprocess.run([sys.executable, "-c", MEASURE, sys.executable, "-m", "worker", *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    err, _, rss_kb = proc.stderr.rstrip("\n").rpartition("\n")
    return proc.returncode, proc.stdout, err, int(rss_kb) // 1024


@pytest.mark.parametrize(("case", "endpoint"), CASES)
def test_hostile_answers_cost_bounded_memory(zuora, tmp_path, case, endpoint):
    """Each hostile answer ends with a clear error and exit 6, peak RSS stays under 100 MB, and
    the report is written with what was listed (page 1)."""
    reply, words = HOSTILE[case]
    script = Script(runs=[run_item("r1"), run_item("r2")])
    server = zuora(script)
    script.replies[endpoint] = reply
    report = tmp_path / "report.json"
    env = clean_env()
    env.update(ZUORA_CLIENT_ID=DEMO_CLIENT_ID, ZUORA_CLIENT_SECRET=DEMO_CLIENT_SECRET)
    command = "run" if endpoint == "delete" else "plan"
    code, out, err, rss_mb = _run_measured(
        [command, "--base-url", server.origin, *FAST, "--concurrency", "1",
         "--report-file", str(report), "--lock-file", str(tmp_path / "lock")], env)
    assert code == 6, err
    assert words in err
    assert rss_mb < 100, f"peak RSS {rss_mb} MB"
    assert "Traceback" not in err
    doc = json.loads(report.read_text())
    assert {r["id"] for r in doc["runs"]} == {"r1", "r2"}
    assert words in doc["exit_reason"]
    assert TOKEN not in out + err + report.read_text()


# ---------------------------------------------------------------- error pages of gateways


def test_html_502_shows_its_title_in_the_error_and_the_report(zuora, cli):
    """nginx's 502 page on every DELETE: the run's error and the report name "502 Bad
    Gateway", not "None"."""
    server = zuora(Script(runs=[run_item("r1")]))
    server.script.replies["delete"] = status_page(502, NGINX_502, "text/html")
    res = cli(None, "run", "--base-url", server.origin, *FAST, "--max-attempts", "2")
    assert res.code == 1
    assert res.report is not None
    error = next(r["error"] for r in res.report["runs"] if r["id"] == "r1")
    assert "HTTP 502: 502 Bad Gateway" in error
    assert "None" not in error


def test_problem_json_404_shows_title_and_detail(zuora, cli):
    """A problem+json 404 (Prism, gateways) on a listing page: its title and detail are in
    the error and the report's exit reason."""
    server = zuora(Script(runs=[run_item("r1")]))
    server.script.replies["list2"] = status_page(404, PROBLEM_404, "application/problem+json")
    res = cli(None, "plan", "--base-url", server.origin, *FAST)
    assert res.code == 6
    for words in ("Route not resolved, no path matched", "hasn't been found in the spec"):
        assert words in res.stderr
        assert res.report is not None
        assert words in res.report["exit_reason"]
