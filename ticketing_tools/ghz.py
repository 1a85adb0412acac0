"""The pinned ghz, built from source with the Go toolchain (``make ghz``).

ghz is the gRPC load tester the suite's own ``ticketing-bench`` follows;
the tests run the real one against nginx, by reflection, to hold the load
balancer to what ghz needs. ``go install`` builds it into
``.tools/ghz-<version>/`` once; later calls find it there. The build goes to
a folder of its own first and is moved into place whole, so two builds at
once, or one cut short, never leave half a binary behind.

    python -m ticketing_tools.ghz        # builds if needed, prints the path
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

VERSION = "v0.120.0"
PACKAGE = "github.com/bojand/ghz/cmd/ghz"
BUILD_TIMEOUT_S = 1800.0


class BuildError(RuntimeError):
    """ghz could not be built: no Go toolchain, or ``go install`` failed."""


def binary(root: Path) -> Path:
    """Where the pinned ghz lives under the repository ``root``."""
    return root / ".tools" / f"ghz-{VERSION}" / "ghz"


def ensure(root: Path, *, timeout_s: float = BUILD_TIMEOUT_S) -> Path:
    """The pinned ghz under ``root``, built first when it is not there."""
    target = binary(root)
    if target.is_file() and os.access(target, os.X_OK):
        return target
    # Go's own installer puts it in /usr/local/go/bin, not always on PATH.
    go = shutil.which("go", path=os.pathsep.join((os.environ.get("PATH", ""), "/usr/local/go/bin")))
    if go is None:
        raise BuildError("ghz is built with Go (1.21 or newer): `go` is not on PATH")
    target.parent.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ghz-build-", dir=target.parent.parent) as build:
        env = {**os.environ, "GOBIN": str(Path(build).resolve())}
        try:
            built = subprocess.run(
                [go, "install", f"{PACKAGE}@{VERSION}"],
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise BuildError(f"go install {PACKAGE}@{VERSION} took over {timeout_s:.0f} s") from exc
        if built.returncode != 0:
            raise BuildError(f"go install {PACKAGE}@{VERSION} failed:\n{built.stderr[-4000:]}")
        staged = Path(build) / "ghz"
        target.parent.mkdir(exist_ok=True)
        os.replace(staged, target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ghz-build", description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="the repository root")
    root: Path = parser.parse_args(argv).root.resolve()
    try:
        print(ensure(root))
    except BuildError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
