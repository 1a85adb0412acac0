"""The stack's nginx takes Stripe's webhooks on a listener of its own, to
the payment services' webhook servers, in HTTPS both ways when the stack's
TLS is on; nginx accepts what is written."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from ticketing_tools.stack import nginx, tls

BACKENDS = {
    "gateway": ["127.0.0.1:1"],
    "reservation_service": ["127.0.0.1:2"],
    "notifier_service": ["127.0.0.1:3"],
    "payment_service": ["127.0.0.1:4"],
}


def rendered(tmp_path: Path, stack_tls: tls.StackTls | None) -> str:
    return nginx.render(
        listen="127.0.0.1:50051",
        backends=BACKENDS,
        prefix=tmp_path,
        error_log=tmp_path / "error.log",
        tls=stack_tls,
        webhook_listen="127.0.0.1:8080",
        webhook_backends=["127.0.0.1:8443", "127.0.0.1:8444"],
    )


def webhook_server(conf: str) -> str:
    found = re.search(r"server \{\s*listen 127\.0\.0\.1:8080.*", conf, flags=re.DOTALL)
    assert found is not None, conf
    return found.group(0)


def nginx_accepts(conf: str, tmp_path: Path) -> None:
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(binary).exists():
        pytest.fail("nginx is not installed; run `make setup`")
    (tmp_path / "nginx.conf").write_text(conf)
    checked = subprocess.run(
        [binary, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr


def test_the_webhook_listener_passes_one_path_to_the_payment_services(tmp_path: Path) -> None:
    conf = rendered(tmp_path, None)
    assert (
        f"upstream {nginx.WEBHOOK_UPSTREAM} {{\n"
        "        server 127.0.0.1:8443 max_fails=0;\n"
        "        server 127.0.0.1:8444 max_fails=0;\n"
    ) in conf
    server = webhook_server(conf)
    assert "listen 127.0.0.1:8080;" in server
    assert f"location = {nginx.WEBHOOK_PATH} {{" in server
    assert f"proxy_pass http://{nginx.WEBHOOK_UPSTREAM};" in server
    assert "client_max_body_size 1m;" in server
    assert "proxy_request_buffering on;" in server
    assert "limit_except POST" in server
    assert "location / {\n            return 404;" in server
    assert "grpc_pass" not in server
    nginx_accepts(conf, tmp_path)


def test_with_tls_the_webhooks_are_https_both_ways(tmp_path: Path) -> None:
    stack_tls = tls.generate(
        tmp_path / "tls", edge_hosts=["127.0.0.1"], service_names=["payment_service"]
    )
    server = webhook_server(conf := rendered(tmp_path, stack_tls))
    assert "listen 127.0.0.1:8080 ssl;" in server
    assert f"ssl_certificate {stack_tls.edge.cert};" in server
    assert f"proxy_pass https://{nginx.WEBHOOK_UPSTREAM};" in server
    assert f"proxy_ssl_trusted_certificate {stack_tls.ca};" in server
    assert "proxy_ssl_verify on;" in server
    # The services' certificate names the gRPC upstream, which is checked.
    assert "proxy_ssl_name payment_service;" in server
    nginx_accepts(conf, tmp_path)


def test_without_a_webhook_listener_there_is_no_second_server(tmp_path: Path) -> None:
    conf = nginx.render(
        listen="127.0.0.1:50051", backends=BACKENDS, prefix=tmp_path, error_log=tmp_path / "e"
    )
    assert nginx.WEBHOOK_UPSTREAM not in conf
    assert conf.count("server {") == 1
