"""Process start-up shared by every service's ``__main__``."""

from __future__ import annotations

import contextlib
import resource
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import uvloop
from pydantic import ValidationError

from .config import ConfigError, Settings, explain
from .storage.db import SchemaNotMigrated


def raise_open_file_limit() -> None:
    """Thousands of concurrent streams need thousands of sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = 65_536 if hard == resource.RLIM_INFINITY else hard
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


S = TypeVar("S", bound=Settings)


def settings_or_exit(settings: type[S]) -> S:
    """``settings`` read from the environment; a bad value ends the process
    with exit code 2 and one line per bad variable on stderr."""
    try:
        return settings()
    except ValidationError as exc:
        problems = explain(settings, exc)
    except ConfigError as exc:
        problems = str(exc).splitlines()
    for problem in problems:
        print(f"configuration error: {problem}", file=sys.stderr)
    raise SystemExit(2)


def run_until_done(main: Coroutine[Any, Any, None]) -> None:
    """Runs ``main`` on uvloop until it returns; Ctrl-C ends it quietly, and a
    schema this build cannot run on ends it with exit code 2 and why."""
    raise_open_file_limit()
    try:
        with contextlib.suppress(KeyboardInterrupt):
            uvloop.run(main)
    except SchemaNotMigrated as exc:
        print(f"start-up error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def run(app: Callable[[S], Coroutine[Any, Any, None]], settings: type[S]) -> None:
    """Reads the settings (see ``settings_or_exit``), then runs ``app`` with
    them until it returns."""
    run_until_done(app(settings_or_exit(settings)))
