"""The load balancer routes each service path to its own backends."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from ticketing_tools.stack import nginx


def test_each_service_path_goes_to_its_backends(tmp_path: Path) -> None:
    conf = nginx.render(
        listen="127.0.0.1:50051",
        backends={
            "gateway": ["127.0.0.1:1", "127.0.0.1:2"],
            "reservation_service": ["127.0.0.1:3"],
            "notifier_service": ["127.0.0.1:4"],
            "payment_service": ["127.0.0.1:5"],
        },
        prefix=tmp_path,
        error_log=tmp_path / "error.log",
    )
    assert "server 127.0.0.1:1 max_fails=0;\n        server 127.0.0.1:2" in conf
    for path, upstream in nginx.ROUTES.items():
        assert f"location {path} {{\n            grpc_pass grpc://{upstream};" in conf
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


def test_the_production_config_routes_exactly_like_the_stack(pytestconfig: pytest.Config) -> None:
    """The routes have one home (``nginx.ROUTES``); deploy/nginx.conf is the
    production copy and must not drift from it."""
    conf = (pytestconfig.rootpath / "deploy" / "nginx.conf").read_text()
    routes = dict(
        re.findall(r"location (\S+) \{\s*grpc_pass grpcs://(\w+);", conf, flags=re.MULTILINE)
    )
    assert routes == nginx.ROUTES
    # Production is TLS on both sides.
    assert "listen 443 ssl http2;" in conf
    assert "grpc_ssl_verify on;" in conf
    assert "grpc_ssl_certificate " in conf


def http2_bounds(conf: str) -> dict[str, str]:
    return dict(
        re.findall(
            r"^\s*(http2_max_concurrent_streams|keepalive_requests|keepalive_time) (\S+);",
            conf,
            flags=re.MULTILINE,
        )
    )


BOUNDS = {
    "http2_max_concurrent_streams": str(nginx.HTTP2_MAX_CONCURRENT_STREAMS),
    "keepalive_requests": str(nginx.KEEPALIVE_REQUESTS),
    "keepalive_time": nginx.KEEPALIVE_TIME,
}


@pytest.mark.parametrize("shipped", ["stack", "deploy/nginx.conf", "deploy/compose/nginx.conf"])
def test_every_nginx_config_bounds_http2_streams(
    shipped: str, tmp_path: Path, pytestconfig: pytest.Config
) -> None:
    """Streams and requests per connection and a connection's age are bounded
    (HTTP/2 rapid reset, CVE-2023-44487) in what the stack writes and in
    what deploy/ ships, each at nginx's advised values."""
    if shipped == "stack":
        conf = nginx.render(
            listen="127.0.0.1:50051",
            backends={name: ["127.0.0.1:1"] for name in set(nginx.ROUTES.values())},
            prefix=tmp_path,
            error_log=tmp_path / "error.log",
        )
    else:
        conf = (pytestconfig.rootpath / shipped).read_text()
    assert http2_bounds(conf) == BOUNDS
    assert nginx.HTTP2_MAX_CONCURRENT_STREAMS <= 128
    assert nginx.KEEPALIVE_REQUESTS <= 1000


@pytest.mark.parametrize("shipped", ["stack", "deploy/nginx.conf", "deploy/compose/nginx.conf"])
def test_every_nginx_config_answers_a_request_too_large_in_grpc(
    shipped: str, tmp_path: Path, pytestconfig: pytest.Config
) -> None:
    """Not nginx's HTTP 413, which a gRPC client reads as UNKNOWN."""
    if shipped == "stack":
        conf = nginx.render(
            listen="127.0.0.1:50051",
            backends={"gateway": ["127.0.0.1:1"]},
            prefix=tmp_path,
            error_log=tmp_path / "error.log",
        )
    else:
        conf = (pytestconfig.rootpath / shipped).read_text()
    flat = " ".join(conf.split())
    assert "error_page 413 = @too_large;" in flat
    assert " ".join(nginx.TOO_LARGE.split()[3:]) in flat
