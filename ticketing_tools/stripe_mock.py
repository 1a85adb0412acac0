"""The pinned stripe-mock, Stripe's API stand-in, built with Go (``make stripe-mock``).

It is built from source with the Go toolchain, with the fixtures the stack
runs it with.

The stack's Stripe provider talks to stripe-mock instead of Stripe when no
test-mode account is named. stripe-mock is stateless: it checks each request
against Stripe's OpenAPI description and answers from fixtures, reflecting
the request's own parameters (amount, currency) onto them. Its bundled
PaymentIntent is ``requires_payment_method`` with a ``last_payment_error``,
which is what Stripe answers for a declined card, so every authorization
would read as a decline. Next to the binary goes ``fixtures-authorizing.json``:
the bundled fixtures, copied from the Go module cache at build time, with the
PaymentIntent of a card that authorizes (``requires_capture``, no error, no
next action, not cancelled); the stack starts stripe-mock with it.

``go install`` builds into ``.tools/stripe-mock-<version>/`` once; later calls
find it there. The build and the fixtures go to a folder of their own first,
which is moved into place whole, so two builds at once, or one cut short,
never leave half of it behind.

    python -m ticketing_tools.stripe_mock   # builds if needed, prints the paths
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

VERSION = "v0.203.0"
MODULE = "github.com/stripe/stripe-mock"
BUILD_TIMEOUT_S = 1800.0
# Where the module keeps the fixtures it embeds, inside the module cache.
BUNDLED_FIXTURES = Path("embedded") / "openapi" / "fixtures3.json"
AUTHORIZING_FIXTURES = "fixtures-authorizing.json"

# What turns the bundled PaymentIntent into one whose card authorized and
# waits for its capture (capture_method=manual, as the provider asks).
AUTHORIZED_PAYMENT_INTENT: Mapping[str, Any] = {
    "status": "requires_capture",
    "last_payment_error": None,
    "next_action": None,
    "cancellation_reason": None,
    "canceled_at": None,
}


class BuildError(RuntimeError):
    """stripe-mock could not be built: no Go toolchain, ``go install`` failed,
    or its bundled fixtures are not where this version keeps them."""


@dataclass(frozen=True)
class StripeMock:
    """A built stripe-mock: the binary and the fixtures to run it with."""

    binary: Path
    fixtures: Path

    def command(self, address: str) -> list[str]:
        """The command line serving plain HTTP on ``address`` (``host:port``),
        logging every request and its parameters."""
        host = address.rpartition(":")[0]
        return [
            str(self.binary),
            "-http-addr",
            address,
            # Unless told where, stripe-mock also serves HTTPS on port 12112 of
            # every interface (a second stack's would fail to start): a port
            # of the system's choosing on the same host, which nobody uses.
            "-https-addr",
            f"{host}:0",
            "-verbose",
            "-fixtures",
            str(self.fixtures),
        ]


def folder(root: Path) -> Path:
    """Where the pinned stripe-mock lives under the repository ``root``."""
    return root / ".tools" / f"stripe-mock-{VERSION}"


def _located(target: Path) -> StripeMock:
    return StripeMock(binary=target / "stripe-mock", fixtures=target / AUTHORIZING_FIXTURES)


def _complete(built: StripeMock) -> bool:
    return built.binary.is_file() and os.access(built.binary, os.X_OK) and built.fixtures.is_file()


def authorizing(fixtures: Mapping[str, Any]) -> dict[str, Any]:
    """``fixtures`` (stripe-mock's format) with a PaymentIntent that authorized."""
    resources = dict(fixtures["resources"])
    resources["payment_intent"] = {**resources["payment_intent"], **AUTHORIZED_PAYMENT_INTENT}
    return {**fixtures, "resources": resources}


def _go() -> str:
    # Go's own installer puts it in /usr/local/go/bin, not always on PATH.
    go = shutil.which("go", path=os.pathsep.join((os.environ.get("PATH", ""), "/usr/local/go/bin")))
    if go is None:
        raise BuildError("stripe-mock is built with Go (1.21 or newer): `go` is not on PATH")
    return go


def _run(argv: list[str], env: Mapping[str, str], timeout_s: float) -> str:
    what = " ".join(argv[1:])
    try:
        done = subprocess.run(
            argv, env=env, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise BuildError(f"go {what} took over {timeout_s:.0f} s") from exc
    if done.returncode != 0:
        raise BuildError(f"go {what} failed:\n{done.stderr[-4000:]}")
    return done.stdout.strip()


def ensure(root: Path, *, timeout_s: float = BUILD_TIMEOUT_S) -> StripeMock:
    """The pinned stripe-mock under ``root``, built first when it is not there."""
    target = folder(root)
    found = _located(target)
    if _complete(found):
        return found
    go = _go()
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="stripe-mock-build-", dir=target.parent) as build:
        staged = Path(build) / target.name
        staged.mkdir()
        env = {**os.environ, "GOBIN": str(staged.resolve())}
        _run([go, "install", f"{MODULE}@{VERSION}"], env, timeout_s)
        # go install has just put the module in the cache.
        cache = Path(_run([go, "env", "GOMODCACHE"], env, 60.0))
        bundled = cache / f"{MODULE}@{VERSION}" / BUNDLED_FIXTURES
        try:
            fixtures = json.loads(bundled.read_text())
        except (OSError, ValueError) as exc:
            raise BuildError(f"stripe-mock's bundled fixtures {bundled}: {exc}") from exc
        # The module cache's files are read-only; the copies are ordinary.
        shutil.copyfile(bundled, staged / BUNDLED_FIXTURES.name)
        (staged / AUTHORIZING_FIXTURES).write_text(json.dumps(authorizing(fixtures), indent=2))
        if not _complete(_located(staged)):
            raise BuildError(f"go install {MODULE}@{VERSION} left no stripe-mock in {staged}")
        try:
            # Replaces nothing but an empty folder: a whole one is kept.
            os.rename(staged, target)
        except OSError as exc:
            if not _complete(found):
                raise BuildError(f"{target} is incomplete; remove it and build again") from exc
            # Another build finished first: its copy is as good as ours.
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stripe-mock-build", description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="the repository root")
    root: Path = parser.parse_args(argv).root.resolve()
    try:
        built = ensure(root)
    except BuildError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(built.binary)
    print(built.fixtures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
