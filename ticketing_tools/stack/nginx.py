"""nginx as the gRPC load balancer: one port, routing by service path; and
on a second port, Stripe's webhooks to the payment services."""

from __future__ import annotations

import grp
import pwd
from collections.abc import Mapping, Sequence
from pathlib import Path

from .tls import StackTls

ROUTES = {
    "/ticketing.v1.GatewayService/": "gateway",
    "/ticketing.v1.ReservationService/": "reservation_service",
    "/ticketing.v1.NotifierService/": "notifier_service",
    "/ticketing.v1.PaymentService/": "payment_service",
    # Every backend describes the whole public API (ticketing_common.reflection);
    # the reservation service answers.
    "/grpc.reflection.v1alpha.ServerReflection/": "reservation_service",
    "/grpc.reflection.v1.ServerReflection/": "reservation_service",
    "/grpc.health.v1.Health/": "gateway",
}

# What CreateEvent (a seating plan) may send through every nginx the project
# writes or ships, as the reservation service takes it
# (reservation_service.seating_plan.MAX_PLAN_MESSAGE_BYTES).
CREATE_EVENT = "/ticketing.v1.ReservationService/CreateEvent"
PLAN_BODY = "4m"

# The HTTP/2 bounds of every nginx configuration the project writes or ships
# (deploy/nginx.conf, deploy/compose/nginx.conf; a test holds them to these).
HTTP2_MAX_CONCURRENT_STREAMS = 128
KEEPALIVE_REQUESTS = 1000
KEEPALIVE_TIME = "1h"


# A request past client_max_body_size is refused by nginx with an HTTP 413,
# which a gRPC client reads as UNKNOWN: answered instead as the services
# answer a message past their bound, RESOURCE_EXHAUSTED (a trailers-only
# response). Every shipped configuration carries it (a test holds them).
TOO_LARGE = """
        error_page 413 = @too_large;
        location @too_large {
            default_type application/grpc;
            add_header grpc-status 8 always;
            add_header grpc-message "request too large for the load balancer" always;
            return 200;
        }
"""


# Where Stripe posts its events, on nginx's webhook listener and on the
# payment services' webhook servers alike.
WEBHOOK_PATH = "/stripe/webhook"
WEBHOOK_UPSTREAM = "payment_webhook"


def _webhook_server(listen: str, backends: Sequence[str], tls: StackTls | None) -> str:
    """The listener for Stripe's webhooks: one path, one method, the body
    passed as it came (the payment service checks its signature over the
    exact bytes, with the Stripe-Signature header), nothing else served.
    HTTP/1.1, as Stripe speaks; with ``tls``, HTTPS with the certificate
    clients see on the gRPC port, and HTTPS to the payment services, whose
    certificate is checked against the stack's CA."""
    upstream = (
        f"    upstream {WEBHOOK_UPSTREAM} {{\n"
        + "".join(f"        server {address} max_fails=0;\n" for address in backends)
        + "        keepalive 16;\n    }\n"
    )
    edge = (
        f"""
        ssl_certificate {tls.edge.cert};
        ssl_certificate_key {tls.edge.key};
        ssl_protocols TLSv1.2 TLSv1.3;"""
        if tls
        else ""
    )
    # The services' certificate names the gRPC upstreams, not this one.
    to_services = (
        f"""
            proxy_ssl_trusted_certificate {tls.ca};
            proxy_ssl_verify on;
            proxy_ssl_name payment_service;
            proxy_ssl_session_reuse on;
            proxy_ssl_protocols TLSv1.2 TLSv1.3;"""
        if tls
        else ""
    )
    return f"""
{upstream}
    # Stripe's webhooks ({WEBHOOK_PATH}), passed to the payment services.
    server {{
        listen {listen}{" ssl" if tls else ""};{edge}
        # Stripe's events are a few kB; the default 1 MB leaves room.
        client_max_body_size 1m;

        location = {WEBHOOK_PATH} {{
            limit_except POST {{
                deny all;
            }}
            proxy_pass {"https" if tls else "http"}://{WEBHOOK_UPSTREAM};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Real-IP $remote_addr;
            # The whole event is read before a payment service sees it.
            proxy_request_buffering on;
            proxy_connect_timeout 2s;
            proxy_read_timeout 15s;
            # Another instance only when the connection fails; an event that
            # reached one and failed is Stripe's to send again.
            proxy_next_upstream error;
            proxy_next_upstream_tries 2;{to_services}
        }}
        location / {{
            return 404;
        }}
    }}
"""


def render(
    *,
    listen: str,
    backends: Mapping[str, Sequence[str]],
    prefix: Path,
    error_log: Path,
    open_files: int = 65_536,
    tls: StackTls | None = None,
    user: pwd.struct_passwd | None = None,
    webhook_listen: str | None = None,
    webhook_backends: Sequence[str] = (),
) -> str:
    """nginx.conf for the stack; ``open_files`` must not exceed the hard limit
    of the user nginx runs as (each proxied stream holds two sockets).

    With ``tls``, clients connect over TLS, and nginx reaches the services
    over mutual TLS: it checks each service's certificate against the stack's
    CA for the upstream's name, and shows its own client certificate.

    With ``webhook_listen`` and ``webhook_backends`` (the payment services'
    webhook servers), a second server takes Stripe's webhooks there."""
    scheme = "grpcs" if tls else "grpc"
    workers_as = f"user {user.pw_name} {grp.getgrgid(user.pw_gid).gr_name};\n" if user else ""
    upstreams = "\n".join(
        f"    upstream {name} {{\n"
        + "".join(f"        server {address} max_fails=0;\n" for address in addresses)
        + "        keepalive 512;\n    }\n"
        for name, addresses in backends.items()
    )
    locations = "\n".join(
        f"        location {path} {{\n            grpc_pass {scheme}://{upstream};\n        }}"
        for path, upstream in ROUTES.items()
    )
    # CreateEvent alone takes a seating plan: an arena's is hundreds of kB.
    locations += (
        f"\n        location = {CREATE_EVENT} {{\n"
        f"            client_max_body_size {PLAN_BODY};\n"
        f"            grpc_pass {scheme}://reservation_service;\n        }}"
    )
    listen_line = f"listen {listen} ssl http2;" if tls else f"listen {listen} http2;"
    tls_lines = (
        f"""
        ssl_certificate {tls.edge.cert};
        ssl_certificate_key {tls.edge.key};
        ssl_protocols TLSv1.2 TLSv1.3;
        grpc_ssl_certificate {tls.proxy.cert};
        grpc_ssl_certificate_key {tls.proxy.key};
        grpc_ssl_trusted_certificate {tls.ca};
        grpc_ssl_verify on;
        grpc_ssl_session_reuse on;
        grpc_ssl_protocols TLSv1.2 TLSv1.3;"""
        if tls
        else ""
    )
    webhooks = (
        _webhook_server(webhook_listen, webhook_backends, tls)
        if webhook_listen and webhook_backends
        else ""
    )
    return f"""# Generated by the local stack launcher.
daemon off;
{workers_as}# Open watch streams must not hold a stopping nginx for their whole timeout.
worker_shutdown_timeout 5s;
worker_processes 2;
worker_rlimit_nofile {open_files};
pid {prefix}/nginx.pid;
error_log {error_log} warn;

events {{
    worker_connections {open_files // 2};
}}

http {{
    access_log off;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;

{upstreams}
    server {{
        {listen_line}{tls_lines}
        # HTTP/2 stream floods (rapid reset, CVE-2023-44487): streams per
        # connection, requests per connection and a connection's age are
        # bounded as in deploy/nginx.conf (nginx's defaults and advice);
        # a client past them waits for a stream or reconnects.
        http2_max_concurrent_streams {HTTP2_MAX_CONCURRENT_STREAMS};
        keepalive_requests {KEEPALIVE_REQUESTS};
        keepalive_time {KEEPALIVE_TIME};
        # Watch streams last until the outcome; the client's deadline rules.
        grpc_read_timeout 1h;
        grpc_send_timeout 1h;
        grpc_connect_timeout 2s;
        # An unreachable backend is retried on the next one, never after
        # the request was sent (Reserve must not be sent twice by us).
        grpc_next_upstream error;
        # The gateways' per-address limits count the client, not nginx (this
        # replaces whatever a client sent under that name).
        grpc_set_header X-Real-IP $remote_addr;
{TOO_LARGE}
{locations}
    }}
{webhooks}}}
"""
