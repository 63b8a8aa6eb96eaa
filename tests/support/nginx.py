"""Real nginx on loopback, as a rate limiter in front of an upstream: ``limit_req`` with
``burst=B nodelay`` answers a bare 429 (no RateLimit fields, no Retry-After), as gateways in
front of Zuora do. Used by tests/e2e/test_nginx.py and bench/limiters.py; install with
``apt-get install -y nginx`` (.ci/run does, when it can).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

NGINX = shutil.which("nginx") or next(
    (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(p).exists()), None)

CONF = """worker_processes 1; pid {d}/nginx.pid; error_log {d}/error.log warn;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {d}/b; proxy_temp_path {d}/p; fastcgi_temp_path {d}/f;
  uwsgi_temp_path {d}/u; scgi_temp_path {d}/s;
  upstream emu {{ server {upstream}; keepalive 16; }}
  limit_req_zone $binary_remote_addr zone=api:1m rate={rate}r/s;
  limit_req_status 429;
  server {{
    listen 127.0.0.1:{port};
    location /oauth/ {{ proxy_pass http://emu; proxy_http_version 1.1;
                        proxy_set_header Connection ""; }}
    location / {{
      limit_req zone=api burst={burst} nodelay;
      proxy_pass http://emu; proxy_http_version 1.1; proxy_set_header Connection "";
    }}
  }}
}}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def limit_req(upstream_url: str, rate: float, burst: int = 5) -> Iterator[str]:
    """nginx limiting every path but ``/oauth/`` to ``rate`` r/s (whole requests per second,
    as nginx counts them) in front of ``upstream_url``; yields its base URL."""
    if NGINX is None:
        raise RuntimeError("nginx is not installed (apt-get install -y nginx)")
    with tempfile.TemporaryDirectory(prefix="nginx-") as tmp:
        d, port = Path(tmp), _free_port()
        (d / "nginx.conf").write_text(CONF.format(
            d=d, upstream=upstream_url.removeprefix("http://"), rate=round(rate), burst=burst,
            port=port))
        subprocess.run([NGINX, "-c", str(d / "nginx.conf"), "-p", str(d)], check=True,
                       capture_output=True)
        try:
            _wait_listening(port)
            yield f"http://127.0.0.1:{port}"
        finally:
            with contextlib.suppress(OSError, ValueError):
                os.kill(int((d / "nginx.pid").read_text()), signal.SIGQUIT)
            time.sleep(0.3)


def _wait_listening(port: int) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
