"""Process start-up shared by every service's ``__main__``."""

from __future__ import annotations

import resource
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import uvloop

from .config import ConfigError


def raise_open_file_limit() -> None:
    """Thousands of concurrent streams need thousands of sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = 65_536 if hard == resource.RLIM_INFINITY else hard
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


S = TypeVar("S")


def run(app: Callable[[S], Coroutine[Any, Any, None]], settings: Callable[[], S]) -> None:
    """Reads the settings, then runs ``app`` on uvloop until it returns; a bad
    setting ends the process with its message and exit code 2."""
    raise_open_file_limit()
    try:
        uvloop.run(app(settings()))
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        pass
