"""``ticketing-bench``: ghz's command line on grpcio.

Flags, defaults and output are ghz's (https://ghz.sh/docs/usage), so a ghz
command line works as is, for the flags listed in ``--help``. Differences:

* ``--cpus`` defaults to 1 (ghz: every core); ``--cpus N`` runs N processes.
* ``--rps`` and ``--load-schedule step|line`` are ghz's: a rate limit, the
  run's total, on the ``-c`` workers, each of which still waits for its
  answer before its next call. ``--async`` (open loop: calls start when due,
  answered or not) is bounded by ``--max-in-flight`` outstanding calls per
  process (extension; ghz has no bound). ``--arrival-rate N`` (extension)
  names the open loop at ``N`` calls a second: ``--async --rps N``. See
  ``engine.py``.
* ``-O json``/``pretty`` include ``details`` like ghz; ``--skip-details``
  (extension) leaves them out (``"details": null``) to keep files small.
* Server-streaming calls add ``firstMessage*`` fields (see ``report.py``).
* Client-streaming, ``--proto``, binary data and ``html``/``influx`` formats
  are not supported.

Exit status: 0 when the run happened, even if calls failed (like ghz); 2 for
bad options or call data; 1 when the run cannot start (cannot connect,
unknown method); 130 for Ctrl-C before the load started (during the load,
Ctrl-C ends the run and the report says ``"endReason": "cancel"``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from ticketing_common import logs
from ticketing_common.runtime import raise_open_file_limit

from . import report, runner
from .durations import DurationError, parse_duration
from .methods import MethodError
from .options import DURATION_STOPS, FORMATS, Options, OptionsError, parse_tags
from .schedule import SCHEDULE_KINDS

PROG = "ticketing-bench"
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


_EPILOG = """\
Durations are Go durations: 500ms, 10s, 1m30s.

Closed loop (default, as in ghz): -c workers each send a call when their
previous one is answered, so at most -c calls are in flight. --rps and
--load-schedule step|line limit the rate at which they may start calls: the
run's total, shared by the workers; slow answers make the run slower than
the rate.

Open loop (--arrival-rate N, or ghz's --async with --rps or --load-schedule):
calls start when the schedule says they are due, answered or not, up to
--max-in-flight outstanding calls per process; workers then only name the
calls (WorkerID) and pick their connection. --arrival-rate N is --async
--rps N; a step or line open loop is --async --load-schedule step|line.

Workers share the --connections round-robin. --cpus N splits calls, workers,
connections and the rate over N processes.
"""


def _duration(text: str) -> int:
    try:
        return parse_duration(text)
    except DurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Load-test a gRPC method, ghz style (https://ghz.sh).",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("host", help="host:port to test")
    _call_flags(p)
    _load_flags(p)
    _concurrency_flags(p)
    _output_flags(p)
    return p


def _call_flags(p: argparse.ArgumentParser) -> None:
    call = p.add_argument_group("call")
    call.add_argument(
        "--call",
        required=True,
        help="fully qualified method, package.Service.Method or package.Service/Method",
    )
    call.add_argument(
        "-d",
        "--data",
        help="call data as JSON, with ghz templates such as {{.RequestNumber}}; @ reads stdin",
    )
    call.add_argument("-D", "--data-file", help="file with the call data JSON")
    call.add_argument("-m", "--metadata", help="request metadata as a JSON object of strings")
    call.add_argument("-M", "--metadata-file", help="file with the metadata JSON")
    call.add_argument(
        "--protoset", default="", help="compiled descriptor set instead of reflection"
    )

    security = p.add_argument_group("security")
    security.add_argument("--insecure", action="store_true", help="plaintext, no TLS")
    security.add_argument("--cacert", default="", help="trusted root certificates (PEM)")
    security.add_argument("--cert", default="", help="client certificate (PEM), with --key")
    security.add_argument("--key", default="", help="client private key (PEM), with --cert")
    security.add_argument("--cname", default="", help="server name override for TLS")
    security.add_argument("--authority", default="", help=":authority pseudo-header")

    timing = p.add_argument_group("timeouts")
    timing.add_argument(
        "-t", "--timeout", type=_duration, default=parse_duration("20s"), help="per call; 0: none"
    )
    timing.add_argument("--connect-timeout", type=_duration, default=parse_duration("10s"))
    timing.add_argument("--keepalive", type=_duration, default=0)


def _load_flags(p: argparse.ArgumentParser) -> None:
    load = p.add_argument_group("load")
    load.add_argument("-n", "--total", type=int, default=200, help="number of calls (200)")
    load.add_argument(
        "-z", "--duration", type=_duration, default=0, help="run for this long; -n is ignored"
    )
    load.add_argument(
        "-x", "--max-duration", type=_duration, default=0, help="stop after this long, -n kept"
    )
    load.add_argument(
        "--duration-stop",
        choices=DURATION_STOPS,
        default="close",
        help="calls in flight when -z ends: close (cancel, count), wait, ignore (cancel, drop)",
    )
    load.add_argument(
        "-r",
        "--rps",
        type=int,
        default=0,
        help="rate limit: calls per second in total, shared by the workers (0: none)",
    )
    load.add_argument(
        "--async",
        dest="async_",
        action="store_true",
        help="open loop: send calls when due without waiting for answers",
    )
    load.add_argument(
        "--arrival-rate",
        type=int,
        default=0,
        metavar="N",
        help="open loop at N calls per second, answered or not (--async --rps N)",
    )
    load.add_argument(
        "--max-in-flight",
        type=int,
        default=10_000,
        help="open loop: most outstanding calls per process (10000)",
    )
    load.add_argument(
        "--load-schedule",
        choices=SCHEDULE_KINDS,
        default="const",
        help="shape of the rate: const (--rps), step, line",
    )
    load.add_argument("--load-start", type=int, default=0, help="step/line: starting rate")
    load.add_argument("--load-end", type=int, default=0, help="step/line: final rate")
    load.add_argument("--load-step", type=int, default=0, help="step/line: rate change per step")
    load.add_argument("--load-step-duration", type=_duration, default=0, help="step: step length")
    load.add_argument(
        "--load-max-duration", type=_duration, default=0, help="step/line: stop changing after"
    )


def _concurrency_flags(p: argparse.ArgumentParser) -> None:
    workers = p.add_argument_group("concurrency")
    workers.add_argument(
        "-c", "--concurrency", type=int, default=50, help="workers making calls (50)"
    )
    workers.add_argument(
        "--connections", type=int, default=1, help="gRPC connections; workers share them (1)"
    )
    workers.add_argument("--concurrency-schedule", choices=SCHEDULE_KINDS, default="const")
    workers.add_argument("--concurrency-start", type=int, default=0)
    workers.add_argument("--concurrency-end", type=int, default=0)
    workers.add_argument("--concurrency-step", type=int, default=1)
    workers.add_argument("--concurrency-step-duration", type=_duration, default=0)
    workers.add_argument("--concurrency-max-duration", type=_duration, default=0)
    workers.add_argument("--cpus", type=int, default=1, help="worker processes (1)")


def _output_flags(p: argparse.ArgumentParser) -> None:
    output = p.add_argument_group("output")
    output.add_argument("-O", "--format", choices=FORMATS, default="summary")
    output.add_argument("-o", "--output", default="", help="file to write; stdout if absent")
    output.add_argument(
        "--skip-details", action="store_true", help="leave per-call details out of JSON"
    )
    output.add_argument(
        "--skipFirst", dest="skip_first", type=int, default=0, help="leave out the first N calls"
    )
    output.add_argument("--name", default="", help="name of the test")
    output.add_argument("--tags", default="", help="JSON object of string tags")


def _text(inline: str | None, path: str | None, what: str) -> str | None:
    if inline is not None and path:
        raise OptionsError(f"give {what} inline or as a file, not both")
    if path:
        try:
            return Path(path).read_text()
        except OSError as exc:
            raise OptionsError(f"cannot read {what} file {path}: {exc}") from None
    if inline == "@":
        return sys.stdin.read()
    return inline


def options_from(args: argparse.Namespace) -> Options:
    """The parsed flags as validated ``Options`` (raises ``OptionsError``)."""
    return Options(
        host=args.host,
        call=args.call,
        data=_text(args.data, args.data_file, "call data"),
        metadata=_text(args.metadata, args.metadata_file, "metadata"),
        protoset=args.protoset,
        total=args.total,
        duration_ns=args.duration,
        max_duration_ns=args.max_duration,
        duration_stop=args.duration_stop,
        concurrency=args.concurrency,
        connections=args.connections,
        async_=args.async_,
        max_in_flight=args.max_in_flight,
        arrival_rate=args.arrival_rate,
        rps=args.rps,
        load_schedule=args.load_schedule,
        load_start=args.load_start,
        load_end=args.load_end,
        load_step=args.load_step,
        load_step_duration_ns=args.load_step_duration,
        load_max_duration_ns=args.load_max_duration,
        concurrency_schedule=args.concurrency_schedule,
        concurrency_start=args.concurrency_start,
        concurrency_end=args.concurrency_end,
        concurrency_step=args.concurrency_step,
        concurrency_step_duration_ns=args.concurrency_step_duration,
        concurrency_max_duration_ns=args.concurrency_max_duration,
        timeout_ns=args.timeout,
        connect_timeout_ns=args.connect_timeout,
        keepalive_ns=args.keepalive,
        insecure=args.insecure,
        cacert=args.cacert,
        cert=args.cert,
        key=args.key,
        cname=args.cname,
        authority=args.authority,
        format=args.format,
        output=args.output,
        skip_details=args.skip_details,
        skip_first=args.skip_first,
        name=args.name.strip(),
        tags=parse_tags(args.tags) if args.tags else (),
        cpus=args.cpus,
    )


def _fail(code: int, message: str) -> NoReturn:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    raise SystemExit(code)


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    try:
        options = options_from(args)
    except ValueError as exc:  # OptionsError, and malformed values
        _fail(EXIT_USAGE, str(exc))
    logs.configure("ticketing-bench", "warning")
    raise_open_file_limit()
    try:
        _run(options)
    except KeyboardInterrupt:  # before the load started; during it, Ctrl-C ends the run
        _fail(EXIT_INTERRUPTED, "interrupted")


def _run(options: Options) -> None:
    try:
        spec = runner.prepare(options)
    except MethodError as exc:
        _fail(EXIT_FAILED, str(exc))
    except ValueError as exc:  # a malformed --call, or call data that does not fit
        _fail(EXIT_USAGE, str(exc))
    try:
        outcome = runner.run(options, spec)
    except runner.RunError as exc:
        _fail(EXIT_FAILED, str(exc))
    text = report.render(report.build(options, outcome.tally, outcome.summary), options.format)
    text = text if text.endswith("\n") else text + "\n"
    if not options.output:
        sys.stdout.write(text)
        return
    try:
        Path(options.output).write_text(text)
    except OSError as exc:
        _fail(EXIT_FAILED, f"cannot write {options.output}: {exc}")


if __name__ == "__main__":
    main()
