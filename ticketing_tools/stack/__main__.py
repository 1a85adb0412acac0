"""``make run``: the whole stack in the foreground until Ctrl-C."""

from __future__ import annotations

import signal
import sys
import time
from collections import defaultdict
from pathlib import Path

from aiokafka.errors import KafkaError

from ticketing_common.runtime import raise_open_file_limit, settings_or_exit

from .launcher import LocalStack, StackConfig

# More restarts than this within the window stop the stack.
MAX_RESTARTS = 5
RESTART_WINDOW_S = 60.0

# Where `make ledger` and `make dlq` find the running stack: in the working
# directory, which is the repository when started by `make run`.
ENV_FILE = Path(".ticketing-stack.env")


def payments(stack: LocalStack) -> str:
    """Which payment provider runs, and with Stripe, where its webhooks go."""
    if stack.stripe is None:
        return (
            "payments: the local stand-in provider (no money moves; "
            "`TICKETING_STACK_PAYMENT_PROVIDER=stripe` runs Stripe's API stand-in, stripe-mock)"
        )
    scheme = "https" if stack.tls is not None else "http"
    api = (
        f"stripe-mock of this stack at {stack.stripe.api_base} (log: {stack.stripe_mock.log})"
        if stack.stripe_mock is not None
        else f"the Stripe account at {stack.stripe.api_base}"
    )
    return (
        f"payments: Stripe, {api}\n"
        f"Stripe webhook URL to register: {scheme}://{stack.webhook_endpoint}/stripe/webhook"
    )


def banner(stack: LocalStack) -> str:
    """Ready-to-paste calls (one line each, so they survive any shell)."""
    endpoint = stack.endpoint
    venv_grpcurl = Path(sys.executable).parent / "grpcurl"
    grpcurl = str(venv_grpcurl) if venv_grpcurl.exists() else "grpcurl"
    admin = Path(sys.executable).parent / "ticketing-admin"
    event = '{"name": "Concert", "capacity": 100, "per_user_limit": 4}'
    reserve = '{"event_id": "EVENT_ID", "quantity": 2, "idempotency_key": "alice-1"}'
    watch = '{"reservation_id": "RESERVATION_ID"}'
    as_admin = '-H "authorization: Bearer $ADMIN"'
    as_alice = '-H "authorization: Bearer $TOKEN"'
    # TLS: grpcurl checks nginx's certificate against the stack's CA.
    transport = f"-cacert {stack.tls.ca}" if stack.tls is not None else "-plaintext"
    kafka = (
        f"Kafka: {stack.kafka.bootstrap}, SASL/SCRAM; each service has its own user, and "
        f"Kafka's scripts take --command-config {stack.kafka_admin_properties}\n"
        if stack.kafka_admin_properties is not None
        else ""
    )
    metrics = "\n".join(
        f"  {child.name:<22} http://127.0.0.1:{child.metrics_port}/metrics"
        for children in stack.services.values()
        for child in children
        if child.metrics_port
    )
    return f"""
Ticketing stack ready at {endpoint}{" over TLS" if stack.tls else ""}  (logs: {stack.logs})
{kafka}{payments(stack)}

Every call but health and reflection needs a bearer token; mint them for this stack:
ADMIN=$({admin} token --subject ops --role admin)
TOKEN=$({admin} token --subject alice)

{grpcurl} {transport} {endpoint} list
{grpcurl} {transport} {as_admin} -d '{event}' {endpoint} ticketing.v1.ReservationService/CreateEvent
{grpcurl} {transport} {as_alice} -d '{reserve}' {endpoint} ticketing.v1.GatewayService/Reserve
{grpcurl} {transport} {as_alice} -d '{watch}' {endpoint} \\
  ticketing.v1.NotifierService/WatchReservation

(replace EVENT_ID and RESERVATION_ID with the ids the previous calls returned)

Prometheus metrics:
{metrics}
Ledger and dead letters of this stack: make ledger / make dlq
Press Ctrl-C to stop everything.
"""


class Supervisor:
    """Supervises like an orchestrator would: a process that dies is
    restarted in place (same port, same data), so a killed consumer, notifier
    or Kafka node comes back while the others carry on. One that keeps dying
    (``MAX_RESTARTS`` within ``RESTART_WINDOW_S``) stops the stack."""

    def __init__(self, stack: LocalStack) -> None:
        self._stack = stack
        self._restarts: dict[str, list[float]] = defaultdict(list)

    def restart_the_dead(self) -> int:
        """Restarts every child that exited; 1 if one keeps dying, else 0."""
        for child in [c for c in self._stack.children if not c.alive()]:
            if self._too_often(child.name):
                print(
                    f"{child.name} keeps exiting and is not restarted; last log "
                    f"lines:\n{child.tail()}",
                    file=sys.stderr,
                )
                return 1
            print(f"{child.name} exited; restarting it", file=sys.stderr, flush=True)
            try:
                self._stack.restart(child, down_s=1.0)
            except (RuntimeError, TimeoutError, KafkaError) as exc:
                print(f"{child.name} did not come back: {exc}", file=sys.stderr)
        return 0

    def _too_often(self, name: str) -> bool:
        now = time.monotonic()
        recent = [t for t in self._restarts[name] if now - t < RESTART_WINDOW_S]
        self._restarts[name] = [*recent, now]
        return len(recent) >= MAX_RESTARTS


def main() -> None:
    raise_open_file_limit()
    config = settings_or_exit(StackConfig)
    stopping = False

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    # While starting, Ctrl-C or SIGTERM abort the start (which cleans up).
    signal.signal(signal.SIGTERM, interrupt)
    stack = LocalStack(config)
    stripe_mock = ", stripe-mock" if config.payment_provider == "stripe" else ""
    print(
        f"starting PostgreSQL, Redis, Apache Kafka{stripe_mock}, the services and nginx...",
        flush=True,
    )
    try:
        stack.start()
    except KeyboardInterrupt:
        print("interrupted while starting; everything started is stopped.", flush=True)
        sys.exit(130)
    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    stack.write_env_file(ENV_FILE)
    print(banner(stack), flush=True)
    supervisor = Supervisor(stack)
    code = 0
    try:
        while not stopping and code == 0:
            code = supervisor.restart_the_dead()
            time.sleep(0.5)
    finally:
        print("stopping...", flush=True)
        stack.stop()
        print("stopped; nothing left running.", flush=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
