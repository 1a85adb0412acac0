"""Process start-up shared by every service's ``__main__``."""

from __future__ import annotations

import resource
import sys
from collections.abc import Coroutine
from typing import Any

import uvloop

from .config import ConfigError


def raise_open_file_limit() -> None:
    """Thousands of concurrent streams need thousands of sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = 65_536 if hard == resource.RLIM_INFINITY else hard
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def run(main: Coroutine[Any, Any, None]) -> None:
    raise_open_file_limit()
    try:
        uvloop.run(main)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        pass
