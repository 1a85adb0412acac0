"""The public keys tokens are verified with: a JWKS document, read from a
file or an https URL, and kept current.

The document is re-read every ``refresh_s``. A call that finds the keys
older than that waits for the re-read before its token is checked, so a key
removed from the document is refused from then on; every call that finds the
keys stale meanwhile shares the one read. A token that names a key id the
document did not hold triggers a re-read too (a new key published for a
rotation), at most once every ``min_reread_s``: random key ids cost at most
one read a second, whoever sends them. Reads run in a thread, bounded by
``FETCH_TIMEOUT_S``, so no call blocks the event loop on a slow disk or
identity provider. A read that fails keeps the keys already held (and says
so in the log) and is tried again after ``RETRY_S``; calls do not wait for
those retries, so a source that is down or hangs costs the callers one
read's wait, not one every ``RETRY_S`` for as long as it lasts. A read still
hanging in its thread past its timeout is not joined by another: one thread
at most reads the document.

Only ES256 and EdDSA signing keys are taken; an entry of another kind, or
one without a ``kid``, is skipped with a warning, and a document whose
``keys`` is empty holds no key at all (every token is refused).
"""

from __future__ import annotations

import asyncio
import http.client
import ipaddress
import json
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

import jwt
import structlog

log = structlog.get_logger(__name__)

ALGORITHMS = frozenset({"ES256", "EdDSA"})
# A fetch of the document ends after this long, however it goes.
FETCH_TIMEOUT_S = 5.0
# After a failed read, the next one is tried this much later (not on every call).
RETRY_S = 5.0
# The largest document read (a JWKS holds a handful of keys).
MAX_DOCUMENT = 1 << 20


def parse_jwks(text: str | bytes) -> dict[str, tuple[str, jwt.PyJWK]]:
    """The signing keys of a JWKS document by key id, each with its entry as
    canonical JSON; ValueError if it is not one (an entry that is not a
    usable signing key is skipped, with a warning)."""
    try:
        document = json.loads(text)
    except RecursionError:
        raise ValueError("the JWKS document is nested too deeply") from None
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("a JWKS document is an object with a `keys` list")  # noqa: TRY004
    keys: dict[str, tuple[str, jwt.PyJWK]] = {}
    for n, entry in enumerate(document["keys"]):
        kid = entry.get("kid") if isinstance(entry, dict) else None
        if not isinstance(kid, str) or not kid:
            log.warning("jwks_key_skipped", index=n, problem="no kid")
            continue
        if kid in keys:
            raise ValueError(f"the JWKS names key {kid!r} twice")
        if entry.get("use", "sig") != "sig":
            log.warning("jwks_key_skipped", kid=kid, problem=f"use {entry.get('use')!r}")
            continue
        try:
            key = jwt.PyJWK(entry)
        except jwt.PyJWTError as exc:
            log.warning("jwks_key_skipped", kid=kid, problem=str(exc))
            continue
        if key.algorithm_name not in ALGORITHMS:
            log.warning("jwks_key_skipped", kid=kid, problem=f"algorithm {key.algorithm_name}")
            continue
        keys[kid] = (json.dumps(entry, sort_keys=True), key)
    return keys


def check_url(url: str) -> None:
    """A JWKS URL is https, or http to a loopback address (a local sidecar)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname:
        try:
            if parts.hostname == "localhost" or ipaddress.ip_address(parts.hostname).is_loopback:
                return
        except ValueError:
            pass
    raise ValueError(f"a JWKS URL must be https (http only to a loopback address), got {url!r}")


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A redirect could lead from https to anywhere: the URL is the one given.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirects)


class SigningKeys:
    """The keys of one JWKS document (``file`` or ``url``), refreshed as the
    module says. ``get`` returns the same object for a key as long as the
    document keeps it unchanged; ``version`` grows whenever a key is removed
    or replaced, so what was verified with an older key can be forgotten."""

    def __init__(
        self,
        *,
        file: str | None = None,
        url: str | None = None,
        refresh_s: float = 60.0,
        min_reread_s: float = 1.0,
        fetch_timeout_s: float = FETCH_TIMEOUT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if (file is None) == (url is None):
            raise ValueError("one JWKS is needed: a file or a URL")
        if url is not None:
            check_url(url)
        self._file = file
        self._url = url
        self._refresh_s = refresh_s
        self._min_reread_s = min_reread_s
        self._fetch_timeout_s = fetch_timeout_s
        self._clock = clock
        self.version = 0
        self._refreshing: asyncio.Task[None] | None = None
        # Whether the last read failed: calls do not wait for the retries.
        self._failing = False
        # Whether a read's thread is running (it may outlast its timeout).
        self._reading = False
        # Read once at start, before any call: a bad document stops the service.
        self._keys: dict[str, tuple[str, jwt.PyJWK]] = parse_jwks(self._read())
        self._attempted_at = clock()
        self._due = self._attempted_at + refresh_s

    @property
    def source(self) -> str:
        return self._file or self._url or ""

    def get(self, kid: object) -> jwt.PyJWK | None:
        held = self._keys.get(kid) if isinstance(kid, str) else None
        return None if held is None else held[1]

    def kids(self) -> frozenset[str]:
        return frozenset(self._keys)

    @property
    def stale(self) -> bool:
        """Whether the keys are due for their periodic re-read."""
        return self._clock() >= self._due

    @property
    def failing(self) -> bool:
        """Whether the last read failed (the keys held are kept)."""
        return self._failing

    def may_reread(self) -> bool:
        """Whether an unknown key id may trigger a re-read now."""
        return (
            self._refreshing is not None or self._clock() - self._attempted_at >= self._min_reread_s
        )

    async def refresh(self, *, wait: bool = True) -> None:
        """Re-reads the document (joining a read under way); never raises
        for a failed read: the keys held stay. With ``wait=False`` the read
        is started (or left going) and not waited for; the object holds it."""
        task = self._refreshing
        if task is None:
            task = asyncio.create_task(self._reload())
            self._refreshing = task
        if wait:
            # A caller that gives up (deadline, disconnect) cancels only its wait.
            await asyncio.shield(task)

    async def _reload(self) -> None:
        self._attempted_at = self._clock()
        try:
            if self._reading:
                self._read_failed("the previous read has not ended")
                return
            async with asyncio.timeout(self._fetch_timeout_s):
                text = await asyncio.to_thread(self._read_flagged)
            keys = parse_jwks(text)
        except (OSError, http.client.HTTPException, ValueError, TimeoutError) as exc:
            self._read_failed(f"{type(exc).__name__}: {exc}")
            return
        except Exception as exc:
            # This task's boundary: what escaped would fail every call that
            # waits for the read, and leave the keys due, read on every call.
            log.exception("jwks_refresh_defect", source=self.source)
            self._read_failed(f"{type(exc).__name__}: {exc}")
            return
        finally:
            self._refreshing = None
        self._install(keys)
        self._failing = False
        self._due = self._clock() + self._refresh_s

    def _read_failed(self, error: str) -> None:
        log.warning("jwks_refresh_failed", source=self.source, error=error, kept=sorted(self._keys))
        self._failing = True
        self._due = self._clock() + min(RETRY_S, self._refresh_s)

    def _install(self, keys: Mapping[str, tuple[str, jwt.PyJWK]]) -> None:
        installed: dict[str, tuple[str, jwt.PyJWK]] = {}
        changed = False
        for kid, key in keys.items():
            held = self._keys.get(kid)
            if held is not None and held[0] == key[0]:
                installed[kid] = held  # the same key: what it verified stays verified
            else:
                installed[kid] = key
                changed |= held is not None
        removed = set(self._keys) - set(installed)
        changed |= bool(removed)
        if installed.keys() != self._keys.keys() or changed:
            log.info(
                "jwks_refreshed",
                source=self.source,
                kids=sorted(installed),
                removed=sorted(removed),
            )
        self._keys = installed
        if changed:
            self.version += 1

    def _read_flagged(self) -> bytes:
        # Set in the thread itself: a read cancelled before its thread began
        # never runs, and must not count as running.
        self._reading = True
        try:
            return self._read()
        finally:
            self._reading = False

    def _read(self) -> bytes:
        if self._file is not None:
            with open(self._file, "rb") as document:
                data = document.read(MAX_DOCUMENT + 1)
        else:
            assert self._url is not None
            # The scheme was checked (check_url): https, or http to loopback.
            request = urllib.request.Request(self._url, headers={"Accept": "application/json"})  # noqa: S310
            with _opener.open(request, timeout=self._fetch_timeout_s) as response:
                data = response.read(MAX_DOCUMENT + 1)
        if len(data) > MAX_DOCUMENT:
            raise ValueError(f"the JWKS is larger than {MAX_DOCUMENT} bytes")
        return bytes(data)
