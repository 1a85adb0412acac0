"""``ticketing-admin``: the schema, the ledger and the dead-letter topic, from a shell.

    ticketing-admin migrate
    ticketing-admin token --subject ID [--subject ID ...] [--role admin] [--ttl 1h]
    ticketing-admin ledger [--event EVENT_ID] [--json]
    ticketing-admin dlq list [--json]
    ticketing-admin dlq show PARTITION:OFFSET
    ticketing-admin dlq replay (--all | PARTITION:OFFSET ...)
    ticketing-admin payments [--json]
    ticketing-admin payments retry PAYMENT_ID
    ticketing-admin payments reconcile [--since ISO8601] [--until ISO8601]
                                       [--provider stripe|local] [--json]
    ticketing-admin kafka-acls [--user SERVICE=NAME ...] [--dry-run]
    ticketing-admin db-grants [--role SERVICE=NAME ...] [--reserve-sync] [--dry-run]
    ticketing-admin record-key [--json]
    ticketing-admin seating import FILE [--name NAME --per-user-limit N
                                         [--price-minor M [--currency EUR] --hold-s S]]
    ticketing-admin seating show EVENT_ID [--no-color]

Connection settings come from ``TICKETING_KAFKA_BOOTSTRAP`` and
``TICKETING_POSTGRES_DSN`` (``make ledger`` and ``make dlq`` read them from
the file the running local stack writes). ``migrate`` is the deployment step
that brings the database schema up to this build (services only check it);
it is safe to run concurrently and again. ``ledger`` exits 1 when the ledger
does not balance, or a seat or money check fails. ``payments`` lists the
payments that are stuck (needing attention, or in flight past their bound;
see ``ticketing_tools.payments``) and exits 1 if there are any; ``payments
retry`` gives one that needs attention a new retry budget. ``payments
reconcile`` compares the payments made in a time range (the last 24 h
unless told) with the provider's books (see ``ticketing_tools.reconcile``):
the local provider's, and Stripe's when ``TICKETING_STRIPE_API_KEY`` is set
(a restricted key that reads PaymentIntents and Refunds will do); it exits
1 on any difference, 2 when it cannot compare. ``kafka-acls`` gives each
service's Kafka user what it needs and nothing more (see
``ticketing_tools.kafka_access``), connecting with the ``TICKETING_KAFKA_*``
credentials of an administrator; it is safe to run again. ``db-grants``
does the same in PostgreSQL: run as the tables' owner after ``migrate``, it
leaves each service's role with exactly the grants of
``ticketing_tools.db_access``. ``seating`` imports seating plans and draws
seat maps (see ``ticketing_tools.seating_admin``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import stripe
from pydantic import Field, SecretStr

from payment_service.settings import StripeSettings
from ticketing_common import logs
from ticketing_common.auth import CUSTOMER, ROLES
from ticketing_common.config import (
    AuthSettings,
    KafkaSettings,
    PostgresClient,
    settings_config,
    variable,
)
from ticketing_common.deadletters import DeadLetter
from ticketing_common.kafka import new_producer
from ticketing_common.runtime import settings_or_exit
from ticketing_common.storage.db import migrate_database

from . import db_access, kafka_access, provider_books, seating_admin
from .bench.durations import DurationError, parse_duration
from .ledger import MoneyCheck, read_topic, reconcile
from .payments import STEP_BOUND, NotRetriable, retry, stuck_payments
from .reconcile import LOCAL, PROVIDERS, STRIPE
from .record_key import print_new_key
from .stack import RunningStack
from .tokens import SigningKey


def _coordinates(text: str) -> tuple[int, int]:
    try:
        partition, offset = text.split(":")
        return int(partition), int(offset)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected PARTITION:OFFSET, got {text!r}") from None


def _event_id(text: str) -> str:
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an event id: {text!r}") from None


def _instant(text: str) -> datetime:
    """An ISO 8601 time; one without an offset is UTC."""
    try:
        found = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    return found if found.tzinfo else found.replace(tzinfo=UTC)


# The range ``payments reconcile`` looks at unless told.
RECONCILE_RANGE = timedelta(hours=24)


def _payment_id(text: str) -> str:
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a payment id: {text!r}") from None


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="ticketing-admin", description=__doc__.split("\n")[0])
    commands = root.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="apply the pending database migrations")
    token = commands.add_parser(
        "token",
        help="print a bearer token for the running local stack (one per --subject, a line each)",
    )
    token.add_argument("--subject", action="append", required=True, help="the caller (sub)")
    token.add_argument(
        "--role", action="append", choices=sorted(ROLES), help="customer (default) or admin"
    )
    token.add_argument(
        "--ttl",
        type=_seconds,
        default=3600.0,
        help="lifetime, e.g. 15m (1h); the services refuse one over "
        "TICKETING_AUTH_MAX_TOKEN_LIFETIME_S (24h)",
    )
    token.add_argument("--tier", help="priority tier claim")
    token.add_argument(
        "--env-file",
        type=Path,
        default=Path(".ticketing-stack.env"),
        help="the running stack's env file (make run writes it)",
    )
    ledger = commands.add_parser(
        "ledger", help="reconcile accepted, decided, dead-lettered, queued"
    )
    ledger.add_argument("--event", type=_event_id, help="only this event")
    ledger.add_argument("--json", action="store_true", help="machine-readable output")
    dlq = commands.add_parser("dlq", help="list, show and replay dead letters")
    actions = dlq.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list")
    listing.add_argument("--json", action="store_true")
    show = actions.add_parser("show")
    show.add_argument("where", type=_coordinates, help="PARTITION:OFFSET on the dead-letter topic")
    replay = actions.add_parser("replay", help="append dead letters to the requests topic again")
    which = replay.add_mutually_exclusive_group(required=True)
    which.add_argument("--all", action="store_true")
    which.add_argument("where", nargs="*", type=_coordinates, default=[])
    payments = commands.add_parser(
        "payments", help="list stuck payments (needing attention, or in flight too long)"
    )
    payments.add_argument("--json", action="store_true", help="machine-readable output")
    payment_actions = payments.add_subparsers(dest="action")
    retry_one = payment_actions.add_parser(
        "retry", help="give a payment that needs attention a new retry budget"
    )
    retry_one.add_argument("payment_id", type=_payment_id)
    reconciling = payment_actions.add_parser(
        "reconcile",
        help="compare our payments made in [--since, --until) with the provider's books; "
        "exit 1 on any difference",
    )
    reconciling.add_argument(
        "--since", type=_instant, help="ISO 8601 (UTC without an offset); default: --until - 24h"
    )
    reconciling.add_argument("--until", type=_instant, help="ISO 8601; default: now")
    reconciling.add_argument(
        "--provider",
        choices=PROVIDERS,
        help="only this provider's books (default: the local provider's, and Stripe's "
        "when TICKETING_STRIPE_API_KEY is set)",
    )
    reconciling.add_argument("--json", action="store_true", help="machine-readable output")
    record_key = commands.add_parser(
        "record-key",
        help="make a new record key (id and secret) and print the settings of each step "
        "of rotating to it",
    )
    record_key.add_argument("--json", action="store_true", help="only the key, as {key_id, secret}")
    acls = commands.add_parser(
        "kafka-acls", help="grant each service's Kafka user what it needs, nothing more"
    )
    acls.add_argument(
        "--user",
        action="append",
        type=_service_user,
        default=[],
        metavar="SERVICE=NAME",
        help="the Kafka user of gateway, consumer or notifier (default: the service's name)",
    )
    acls.add_argument("--dry-run", action="store_true", help="print the ACLs, change nothing")
    grants = commands.add_parser(
        "db-grants",
        help="grant each service's PostgreSQL role what its queries need, nothing more "
        "(as the tables' owner, after migrate)",
    )
    grants.add_argument(
        "--role",
        action="append",
        type=_service_role,
        default=[],
        metavar="SERVICE=NAME",
        help=f"the role of {', '.join(db_access.SERVICES)} (default: the service's name)",
    )
    grants.add_argument(
        "--reserve-sync",
        action="store_true",
        help="also what ReserveSync (benchmarks only) needs on the gateway's role",
    )
    grants.add_argument("--dry-run", action="store_true", help="print the SQL, change nothing")
    seating_admin.add_parser(commands)
    return root


def _service_names(services: Sequence[str]) -> Callable[[str], tuple[str, str]]:
    """An argument type for SERVICE=NAME, SERVICE one of ``services``."""

    def service_name(text: str) -> tuple[str, str]:
        service, _, name = text.partition("=")
        if service not in services or not name:
            raise argparse.ArgumentTypeError(
                f"expected SERVICE=NAME with SERVICE one of {', '.join(services)}, got {text!r}"
            )
        return service, name

    return service_name


_service_role = _service_names(db_access.SERVICES)
_service_user = _service_names(kafka_access.SERVICES)


def grant_kafka_access(args: argparse.Namespace, kafka: KafkaSettings) -> int:
    users = {service: service for service in kafka_access.SERVICES} | dict(args.user)
    acls = (
        kafka_access.acls(kafka, users) if args.dry_run else kafka_access.apply_acls(kafka, users)
    )
    for acl in acls:
        pattern = acl.resource_pattern
        print(
            f"{acl.principal}\tallow {acl.operation.name}\ton "
            f"{pattern.resource_type.name} {pattern.resource_name}"
        )
    return 0


def _letter_dict(letter: DeadLetter) -> dict[str, object]:
    return {
        "partition": letter.partition,
        "offset": letter.offset,
        "kind": letter.kind.value,
        "error": letter.error,
        "original": f"{letter.original_topic}/{letter.original_partition}:{letter.original_offset}",
        "attempts": letter.attempts,
        "reservation_id": letter.reservation_id,
        "dead_lettered_at": letter.dead_lettered_at.isoformat()
        if letter.dead_lettered_at
        else None,
    }


async def dead_letters(kafka: KafkaSettings) -> list[DeadLetter]:
    return [DeadLetter.from_record(r) for r in await read_topic(kafka, kafka.dead_letter_topic)]


async def replay(kafka: KafkaSettings, letters: Sequence[DeadLetter]) -> int:
    """Appends each letter's original record to the requests topic again.

    Idempotent: a request whose id was decided (dead-lettered requests are
    recorded as rejected) gets its stored outcome re-published, nothing more;
    a record that still cannot be read is dead-lettered again.
    """
    producer = new_producer(kafka, client_id="ticketing-admin")
    await producer.start()
    try:
        for letter in letters:
            await producer.send_and_wait(kafka.requests_topic, letter.value, key=letter.key)
    finally:
        await producer.stop()
    return len(letters)


class AdminSettings(PostgresClient):
    """What ``ticketing-admin`` connects to (only settings shared with the services)."""

    model_config = settings_config("ADMIN")

    kafka: KafkaSettings = KafkaSettings.with_defaults()
    payment_step_bound_s: float = Field(
        STEP_BOUND.total_seconds(),
        gt=0,
        description="how long a payment may be capturing, voiding or refunding before "
        "`ledger` and `payments` call it stuck; keep it above the payment service's "
        "`TICKETING_PAYMENT_RETRY_WINDOW_S`, after which the service flags it itself",
    )

    @property
    def step_bound(self) -> timedelta:
        return timedelta(seconds=self.payment_step_bound_s)


def _seconds(text: str) -> float:
    try:
        seconds = parse_duration(text) / 1e9
    except DurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text!r}")
    return seconds


def print_tokens(args: argparse.Namespace, configured: str | None, max_lifetime_s: float) -> int:
    """Mints with the stack's signing key: ``configured`` (the environment's),
    else the one the stack's env file names; none living longer than the
    services accept (``max_lifetime_s``, their TICKETING_AUTH_MAX_TOKEN_LIFETIME_S)."""
    if args.ttl > max_lifetime_s:
        print(
            f"--ttl {args.ttl:g} s is longer than the services accept: they refuse a token "
            f"living over {max_lifetime_s:g} s ({variable(AuthSettings, 'max_token_lifetime_s')}) "
            "as UNAUTHENTICATED; ask for a shorter --ttl",
            file=sys.stderr,
        )
        return 2
    name = variable(RunningStack, "signing_key_file")
    key_file = configured or _from_env_file(args.env_file, name)
    if not key_file:
        print(
            f"no signing key: set {name} or start the local stack (make run), "
            f"which writes {args.env_file}",
            file=sys.stderr,
        )
        return 2
    key = SigningKey.load(Path(key_file))
    for subject in args.subject:
        print(key.mint(subject, roles=args.role or (CUSTOMER,), ttl_s=args.ttl, tier=args.tier))
    return 0


def _from_env_file(path: Path, name: str) -> str | None:
    if not path.is_file():
        return None
    for line in path.read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() == name:
            return value.strip()
    return None


async def main_async(args: argparse.Namespace, settings: AdminSettings) -> int:
    if args.command == "migrate":
        applied = await migrate_database(settings.postgres_dsn)
        print(f"applied migrations {applied}" if applied else "the schema is up to date")
        return 0
    if args.command == "db-grants":
        return await _db_grants(args, settings.postgres_dsn)
    if args.command == "ledger":
        return await _ledger(args, settings)
    if args.command == "payments":
        return await _payments(args, settings)
    return await _dlq(args, settings.kafka)


async def _db_grants(args: argparse.Namespace, dsn: str) -> int:
    roles = dict(args.role)
    if args.dry_run:
        sql = db_access.statements(roles, reserve_sync=args.reserve_sync)
    else:
        conn = await asyncpg.connect(dsn, timeout=10)
        try:
            sql = await db_access.apply_grants(conn, roles, reserve_sync=args.reserve_sync)
        except db_access.AccessError as exc:
            print(exc, file=sys.stderr)
            return 1
        finally:
            await conn.close()
    for statement in sql:
        print(f"{statement};")
    return 0


async def _payments(args: argparse.Namespace, settings: AdminSettings) -> int:
    pool = await asyncpg.create_pool(settings.postgres_dsn, min_size=1, max_size=2)
    try:
        if args.action == "retry":
            try:
                step = await retry(pool, args.payment_id)
            except NotRetriable as exc:
                print(exc, file=sys.stderr)
                return 2
            print(f"payment {args.payment_id}: {step} again, with a new retry budget")
            return 0
        stuck = await stuck_payments(pool, step_bound=settings.step_bound)
    finally:
        await pool.close()
    if args.json:
        print(json.dumps([payment.as_dict() for payment in stuck], indent=2))
    else:
        for p in stuck:
            print(
                f"{p.payment_id}  {p.why}  reservation={p.reservation_id}  event={p.event_id}  "
                f"{p.amount_minor} {p.currency}  step={p.status} since {p.since.isoformat()}  "
                f"attempts={p.attempts}  last error: {p.last_error or '-'}"
            )
        print(f"{len(stuck)} stuck payments")
    return 1 if stuck else 0


async def reconcile_payments(
    args: argparse.Namespace, settings: AdminSettings, stripe_settings: StripeSettings
) -> int:
    """``payments reconcile``: every difference on a line of its own, then a
    summary per provider. Stripe is reached as the payment service reaches
    it (``StripeSettings``: only its key and API are read here)."""
    until = args.until or datetime.now(UTC)
    since = args.since or until - RECONCILE_RANGE
    if since >= until:
        print(
            f"--since {since.isoformat()} is not before --until {until.isoformat()}",
            file=sys.stderr,
        )
        return 2
    pool = await asyncpg.create_pool(settings.postgres_dsn, min_size=1, max_size=2)
    try:
        results = await _reconciliations(pool, args.provider, stripe_settings, since, until)
    except provider_books.NotConfigured as exc:
        print(exc, file=sys.stderr)
        return 2
    except stripe.StripeError as exc:
        print(f"Stripe refused or failed to answer: {exc.user_message or exc}", file=sys.stderr)
        return 2
    finally:
        await pool.close()
    if args.json:
        print(json.dumps([result.as_dict() for result in results], indent=2))
    else:
        for result in results:
            for difference in result.differences:
                print(f"{result.provider}  {difference.kind}: {difference.text}")
        for result in results:
            print(
                f"{result.provider}: {len(result.differences)} differences between our "
                f"{result.ours} payments and its {result.their_payments} payments and "
                f"{result.their_refunds} refunds, {since.isoformat()} to {until.isoformat()}"
            )
    return 1 if any(result.differences for result in results) else 0


async def _reconciliations(
    pool: asyncpg.Pool,
    provider: str | None,
    stripe_settings: StripeSettings,
    since: datetime,
    until: datetime,
) -> list[provider_books.Reconciliation]:
    """``provider``'s books against ours; without one, the local provider's
    and Stripe's when its key is set (and when it is not, there must be no
    Stripe payment to compare)."""
    results = []
    if provider in (None, LOCAL):
        results.append(await provider_books.reconcile_local(pool, since, until))
    if provider == STRIPE or (provider is None and stripe_settings.api_key is not None):
        async with provider_books.stripe_client(stripe_settings) as client:
            results.append(await provider_books.reconcile_stripe(pool, client, since, until))
    elif provider is None:
        taken = await provider_books.our_payments(pool, STRIPE, since, until)
        if taken:
            raise provider_books.NotConfigured(
                f"{len(taken)} payments in the range were taken by Stripe: comparing them "
                f"needs {variable(StripeSettings, 'api_key')} (or --provider local)"
            )
    return results


async def _ledger(args: argparse.Namespace, settings: AdminSettings) -> int:
    pool = await asyncpg.create_pool(settings.postgres_dsn, min_size=1, max_size=2)
    try:
        ledger = await reconcile(
            settings.kafka, pool, event_id=args.event, step_bound=settings.step_bound
        )
    finally:
        await pool.close()
    report = ledger.as_dict()
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(
            f"accepted {ledger.accepted} = decided {ledger.decided} "
            f"+ dead-lettered {ledger.dead_lettered} + queued {ledger.queued}"
            f"  ({'balanced' if ledger.balanced else 'NOT BALANCED'}; "
            f"{ledger.unique_reservations} distinct reservations)"
        )
        for entry in ledger.missing:
            print(
                f"  missing: partition {entry.partition} offset {entry.offset} "
                f"reservation {entry.reservation_id} event {entry.event_id}"
            )
        for check in ledger.seats:
            mark = "ok" if check.ok else "BROKEN"
            print(
                f"  event {check.event_id}: capacity {check.capacity} = available "
                f"{check.available} + held {check.held} + confirmed {check.confirmed} "
                f"[{mark}]"
            )
        for money in ledger.money:
            _print_money(money)
    return 0 if ledger.balanced and ledger.seats_ok and ledger.money_ok else 1


def _print_money(money: MoneyCheck) -> None:
    mark = "ok" if money.ok else "BROKEN"
    at_stripe = (
        f"; Stripe's part captured {money.stripe_captured_minor}, refunded "
        f"{money.stripe_refunded_minor} (its books: payments reconcile)"
        if money.stripe_captured_minor or money.stripe_refunded_minor
        else ""
    )
    print(
        f"  event {money.event_id}: captured {money.captured_minor} = confirmed "
        f"{money.confirmed_seats} x {money.price_minor} {money.currency}; refunded "
        f"{money.refunded_minor}; local provider captured {money.provider_captured_minor}, "
        f"refunded {money.provider_refunded_minor}{at_stripe} [{mark}]"
    )
    for problem in money.problems:
        print(f"    {problem}")
    for ref in money.references:
        print(
            f"    payment {ref.payment_id} {ref.status} {ref.amount_minor}: {ref.provider} "
            f"{ref.reference or '(no reference recorded)'}"
        )


async def _dlq(args: argparse.Namespace, kafka: KafkaSettings) -> int:
    letters = await dead_letters(kafka)
    if args.action == "list":
        if args.json:
            print(json.dumps([_letter_dict(letter) for letter in letters], indent=2))
        else:
            for letter in letters:
                d = _letter_dict(letter)
                print(
                    f"{d['partition']}:{d['offset']}  {d['kind']:<11} {d['original']}  "
                    f"attempts={d['attempts']}  reservation={d['reservation_id']}  {d['error']}"
                )
            print(f"{len(letters)} dead letters")
        return 0
    if args.action == "show":
        match = [x for x in letters if (x.partition, x.offset) == args.where]
        if not match:
            print(f"no dead letter at {args.where[0]}:{args.where[1]}", file=sys.stderr)
            return 2
        print(
            json.dumps(
                {**_letter_dict(match[0]), "value_hex": (match[0].value or b"").hex()}, indent=2
            )
        )
        return 0
    chosen = (
        letters if args.all else [x for x in letters if (x.partition, x.offset) in set(args.where)]
    )
    missing = set(args.where) - {(x.partition, x.offset) for x in chosen}
    if missing:
        print(
            f"no dead letter at {', '.join(f'{p}:{o}' for p, o in sorted(missing))}",
            file=sys.stderr,
        )
        return 2
    print(f"replayed {await replay(kafka, chosen)} dead letters")
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    # Output is for people and scripts on stdout; log lines (warnings) go to
    # stderr as JSON, like the services'.
    logs.configure("ticketing-admin", "warning")
    if args.command == "token":
        raise SystemExit(
            print_tokens(
                args,
                settings_or_exit(RunningStack).signing_key_file,
                settings_or_exit(AuthSettings).max_token_lifetime_s,
            )
        )
    if args.command == "record-key":
        raise SystemExit(print_new_key(as_json=args.json))
    if args.command == "seating":
        raise SystemExit(seating_admin.main(args))
    if args.command == "kafka-acls":
        raise SystemExit(grant_kafka_access(args, settings_or_exit(AdminSettings).kafka))
    if args.command == "payments" and args.action == "reconcile":
        raise SystemExit(
            asyncio.run(
                reconcile_payments(args, settings_or_exit(AdminSettings), _stripe_account())
            )
        )
    raise SystemExit(asyncio.run(main_async(args, settings_or_exit(AdminSettings))))


def _stripe_account() -> StripeSettings:
    """The Stripe account to reconcile with: ``TICKETING_STRIPE_*`` when set,
    else that of the running local stack (its env file names its own
    stripe-mock, or the test-mode account it was given)."""
    stripe_settings = settings_or_exit(StripeSettings)
    if stripe_settings.api_key is not None:
        return stripe_settings
    stack = settings_or_exit(RunningStack)
    if stack.stripe_api_key is None or stack.stripe_api_base is None:
        return stripe_settings
    return StripeSettings(api_key=SecretStr(stack.stripe_api_key), api_base=stack.stripe_api_base)


if __name__ == "__main__":
    main()
