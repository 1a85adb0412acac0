"""The token verifier: keys kept current from the JWKS, claims of the right
shape, lifetimes bounded. Real ES256 keys and tokens, a JWKS file (or a
loopback server) of the test's own, and a clock the test moves."""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from pydantic import ValidationError

from ticketing_common.auth import STANDARD_TIER, TokenVerifier, VerifierConfig
from ticketing_common.config import AuthSettings
from ticketing_common.errors import Reason, Unauthenticated
from ticketing_common.jwks import RETRY_S, SigningKeys, check_url
from ticketing_tools.tokens import AUDIENCE, ISSUER, SigningKey

REFRESH_S = 60.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def jwks(*keys: SigningKey) -> str:
    return json.dumps({"keys": [json.loads(key.jwks())["keys"][0] for key in keys]})


def claims(subject: str = "ann", **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    found: dict[str, Any] = {
        "sub": subject,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "roles": ["customer"],
    }
    found.update(overrides)
    return {k: v for k, v in found.items() if v is not ...}


def sign(key: SigningKey, payload: dict[str, Any]) -> str:
    return jwt.encode(payload, key.private_pem, algorithm="ES256", headers={"kid": key.kid})


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def keys() -> tuple[SigningKey, SigningKey]:
    return SigningKey.generate(), SigningKey.generate()


@pytest.fixture
def key(keys: tuple[SigningKey, SigningKey]) -> SigningKey:
    return keys[0]


@pytest.fixture
def document(tmp_path: Path, key: SigningKey) -> Path:
    """A JWKS file holding ``key``; a test may write another document to it."""
    path = tmp_path / "jwks.json"
    path.write_text(jwks(key))
    return path


def publish(document: Path, text: str) -> None:
    document.write_text(text)


@pytest.fixture
def verifier(document: Path, clock: Clock) -> TokenVerifier:
    return verifier_of(document, clock)


def verifier_of(
    path: Path, clock: Clock, *, keys: SigningKeys | None = None, **config: Any
) -> TokenVerifier:
    return TokenVerifier(
        VerifierConfig(
            issuer=ISSUER,
            audience=AUDIENCE,
            leeway_s=30,
            jwks_file=str(path),
            jwks_refresh_s=REFRESH_S,
            **config,
        ),
        keys=keys,
        clock=clock,
    )


async def refused(verifier: TokenVerifier, token: str) -> Unauthenticated:
    with pytest.raises(Unauthenticated) as caught:
        await verifier.identify(token)
    return caught.value


async def test_a_key_removed_from_the_jwks_is_refused_after_the_refresh_period(
    tmp_path: Path, clock: Clock, keys: tuple[SigningKey, SigningKey]
) -> None:
    old, new = keys
    document = tmp_path / "jwks.json"
    document.write_text(jwks(old, new))
    verifier = verifier_of(document, clock)
    by_old, by_new = sign(old, claims("ann")), sign(new, claims("bob"))
    assert (await verifier.identify(by_old)).subject == "ann"  # verified, and remembered
    assert (await verifier.identify(by_new)).subject == "bob"

    document.write_text(jwks(new))  # the old key is withdrawn
    clock.now += REFRESH_S - 1
    assert (await verifier.identify(by_old)).subject == "ann"  # within the period
    clock.now += 2
    # Past it: the remembered token is refused with its key, and so is a new one.
    assert (await refused(verifier, by_old)).reason is Reason.TOKEN_INVALID
    assert "unknown signing key" in (await refused(verifier, sign(old, claims("cy")))).message
    assert (await verifier.identify(by_new)).subject == "bob"


async def test_a_key_replaced_under_the_same_kid_no_longer_verifies_what_it_did(
    tmp_path: Path, clock: Clock, keys: tuple[SigningKey, SigningKey]
) -> None:
    first, other = keys
    document = tmp_path / "jwks.json"
    document.write_text(jwks(first))
    verifier = verifier_of(document, clock)
    token = sign(first, claims())
    assert (await verifier.identify(token)).subject == "ann"
    document.write_text(jwks(SigningKey(first.kid, other.private_pem)))
    clock.now += REFRESH_S + 1
    assert "Signature verification failed" in (await refused(verifier, token)).message


async def test_an_unknown_kid_rereads_the_jwks_but_at_most_once_a_second(
    tmp_path: Path, clock: Clock, keys: tuple[SigningKey, SigningKey]
) -> None:
    held, rotated = keys
    document = tmp_path / "jwks.json"
    document.write_text(jwks(held))
    verifier = verifier_of(document, clock)
    clock.now += 5  # well within the refresh period
    # A key published for a rotation is found on its first token.
    document.write_text(jwks(held, rotated))
    assert (await verifier.identify(sign(rotated, claims("ann")))).subject == "ann"
    # A flood of made-up kids: one re-read a second, however many tokens.
    later = SigningKey.generate()
    document.write_text(jwks(held, rotated, later))
    for n in range(20):
        stranger = SigningKey(f"random-{n}", held.private_pem)
        assert "unknown signing key" in (await refused(verifier, sign(stranger, claims()))).message
    token = sign(later, claims("bob"))
    assert "unknown signing key" in (await refused(verifier, token)).message  # not re-read
    clock.now += 1.0
    assert (await verifier.identify(token)).subject == "bob"


async def test_an_unreadable_jwks_keeps_the_keys_held_and_an_empty_one_refuses_all(
    document: Path, clock: Clock, key: SigningKey
) -> None:
    keys = SigningKeys(file=str(document), refresh_s=REFRESH_S, clock=clock)
    verifier = verifier_of(document, clock, keys=keys)
    token = sign(key, claims())
    publish(document, "{not json")
    clock.now += REFRESH_S + 1
    assert (await verifier.identify(token)).subject == "ann"
    assert keys.failing
    publish(document, '{"keys": []}')  # every key withdrawn
    clock.now += REFRESH_S + 1
    # The retry after a failed read runs while calls go on with the keys held.
    assert (await verifier.identify(token)).subject == "ann"
    await keys.refresh()  # once it has run, the token is refused
    assert (await refused(verifier, token)).reason is Reason.TOKEN_INVALID


async def test_a_document_nested_too_deeply_is_a_failed_read_not_a_failed_call(
    document: Path, clock: Clock, key: SigningKey
) -> None:
    keys = SigningKeys(file=str(document), refresh_s=REFRESH_S, clock=clock)
    verifier = verifier_of(document, clock, keys=keys)
    token = sign(key, claims())
    publish(document, "[" * 100_000)  # json.loads raises RecursionError on it
    clock.now += REFRESH_S + 1
    assert (await verifier.identify(token)).subject == "ann"
    assert keys.failing and not keys.stale  # retried after RETRY_S, not on every call
    with pytest.raises(ValueError, match="nested too deeply"):
        SigningKeys(file=str(document))


class BlockingReads:
    """Stands in for a JWKS source: fails, or hangs until released, on cue."""

    def __init__(self, keys: SigningKeys) -> None:
        self.read = keys._read
        self.fail = False
        self.released = threading.Event()
        self.entered = 0
        keys._read = self  # type: ignore[method-assign]

    def __call__(self) -> bytes:
        self.entered += 1
        if self.fail:
            raise OSError("connection refused")
        self.released.wait(timeout=60)
        return self.read()


async def test_calls_do_not_wait_for_the_retries_of_a_failing_jwks_source(
    document: Path, clock: Clock, key: SigningKey
) -> None:
    keys = SigningKeys(file=str(document), refresh_s=REFRESH_S, fetch_timeout_s=60, clock=clock)
    verifier = verifier_of(document, clock, keys=keys)
    token = sign(key, claims())
    source = BlockingReads(keys)
    source.fail = True
    clock.now += REFRESH_S + 1
    assert (await verifier.identify(token)).subject == "ann"  # waited for the failed read
    source.fail = False
    clock.now += RETRY_S
    try:
        # The retry hangs (a source that does not answer): the call goes on
        # with the keys held instead of waiting for it.
        identified = await asyncio.wait_for(verifier.identify(token), timeout=30)
        assert identified.subject == "ann"
        # The retry runs beside the call: its read begins in its own time.
        async with asyncio.timeout(10):
            while source.entered < 2:
                await asyncio.sleep(0.01)
    finally:
        source.released.set()
    await keys.refresh()
    assert not keys.failing


async def test_a_read_that_outlasts_its_timeout_is_not_joined_by_another_thread(
    document: Path, clock: Clock
) -> None:
    keys = SigningKeys(file=str(document), refresh_s=REFRESH_S, fetch_timeout_s=0.2, clock=clock)
    source = BlockingReads(keys)
    try:
        await keys.refresh()  # times out, its thread still reading
        assert keys.failing
        clock.now += RETRY_S
        await keys.refresh()  # failed at once: the first read has not ended
        assert source.entered == 1
    finally:
        source.released.set()


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        (claims(exp=...), 'missing the "exp" claim'),
        (claims(iat=...), 'missing the "iat" claim'),
        (claims(sub=...), 'missing the "sub" claim'),
        (claims(exp=int(time.time()) + 25 * 3600), "lifetime (exp - iat) must be"),
        (
            claims(iat=int(time.time()) - 30 * 24 * 3600, exp=int(time.time()) + 3600),
            "at most 86400 s, got 2595600 s",
        ),
        # Past any float: a long lifetime, not an OverflowError (INTERNAL).
        (claims(exp=10**400), "got 10^12+ s"),
        (claims(exp=1e308), "got 10^12+ s"),
    ],
    ids=[
        "no exp",
        "no iat",
        "no sub",
        "lives 25 h",
        "issued a month ago",
        "ends past any float",
        "ends at the largest float",
    ],
)
async def test_a_token_without_exp_and_iat_or_living_too_long_is_refused(
    verifier: TokenVerifier, key: SigningKey, payload: dict[str, Any], problem: str
) -> None:
    error = await refused(verifier, sign(key, payload))
    assert error.reason is Reason.TOKEN_INVALID
    assert problem in error.message


async def test_a_token_that_ends_before_it_begins_is_refused(
    verifier: TokenVerifier, key: SigningKey
) -> None:
    # Its times from now, not from when the tests were collected: it must
    # not have expired by the time it is checked.
    now = int(time.time())
    error = await refused(verifier, sign(key, claims(exp=now + 10, iat=now + 20)))
    assert error.reason is Reason.TOKEN_INVALID
    assert "got -10 s" in error.message


async def test_the_lifetime_bound_is_a_setting_and_tokens_of_a_day_pass_by_default(
    document: Path, clock: Clock, key: SigningKey
) -> None:
    # What the suite's own tests and `ticketing-admin token` mint.
    day = key.mint("ann", ttl_s=24 * 3600)
    assert (await verifier_of(document, clock).identify(day)).subject == "ann"
    short = verifier_of(document, clock, max_lifetime_s=900)
    assert "at most 900 s" in (await refused(short, key.mint("ann", ttl_s=3600))).message
    assert (await short.identify(key.mint("ann", ttl_s=600))).subject == "ann"


WRONG_SHAPE = {
    "roles": "the token's roles claim must be a list of roles (admin, customer), got {}",
    "tier": "the token's tier claim must be a string of at most 64 printable characters, got {}",
}


@pytest.mark.parametrize(
    ("claim", "value", "shown"),
    [
        ("roles", "admin", "'admin'"),
        ("roles", "admin customer", "'admin customer'"),
        ("roles", 5, "a number"),
        ("roles", True, "a boolean"),
        ("roles", None, "null"),
        ("roles", {"admin": True}, "an object"),
        ("roles", [["admin"]], "a list holding a list"),
        ("roles", [{"role": "admin"}], "a list holding an object"),
        ("roles", ["customer", 7], "a list holding a number"),
        ("roles", ["customer", "root"], "a list naming 'root'"),
        ("tier", 5, "a number"),
        ("tier", None, "null"),
        ("tier", ["vip"], "a list"),
        ("tier", {"name": "vip"}, "an object"),
        ("tier", "v" * 65, f"'{'v' * 40}'..."),
        ("tier", "vip\n", "'vip\\n'"),
    ],
)
async def test_roles_or_a_tier_of_the_wrong_shape_are_refused_naming_the_claim(
    verifier: TokenVerifier, key: SigningKey, claim: str, value: Any, shown: str
) -> None:
    error = await refused(verifier, sign(key, claims(**{claim: value})))
    assert error.reason is Reason.TOKEN_INVALID
    assert error.metadata == {"claim": claim}
    assert error.message == WRONG_SHAPE[claim].format(shown)


async def test_roles_as_a_list_are_taken_and_none_given_is_a_customer(
    verifier: TokenVerifier, key: SigningKey
) -> None:
    both = await verifier.identify(sign(key, claims(roles=["admin", "customer"])))
    assert both.roles == {"admin", "customer"}
    assert (await verifier.identify(sign(key, claims(roles=...)))).roles == {"customer"}
    assert (await verifier.identify(sign(key, claims(roles=[])))).roles == frozenset()


async def test_a_tier_is_taken_as_given_and_none_or_empty_is_standard(
    verifier: TokenVerifier, key: SigningKey
) -> None:
    assert (await verifier.identify(sign(key, claims(tier="vip")))).tier == "vip"
    assert (await verifier.identify(sign(key, claims(tier="")))).tier == STANDARD_TIER
    assert (await verifier.identify(sign(key, claims()))).tier == STANDARD_TIER


def test_an_hs256_token_is_refused_whatever_secret_it_was_signed_with(
    verifier: TokenVerifier, key: SigningKey
) -> None:
    secret = "a-shared-secret-of-more-than-32-characters"
    forged = jwt.encode(claims(), secret, algorithm="HS256", headers={"kid": key.kid})
    with pytest.raises(Unauthenticated) as caught:
        verifier.verify(forged)
    assert caught.value.message == "the token is not valid: The specified alg value is not allowed"
    # No setting offers a shared secret to verify with.
    assert not any("hs256" in name or "secret" in name for name in AuthSettings.model_fields)


@pytest.fixture
def jwks_server() -> Iterator[tuple[str, list[str]]]:
    """A loopback server answering the JWKS the test puts in the list."""
    documents = ['{"keys": []}']

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = documents[-1].encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/jwks.json", documents
    finally:
        server.shutdown()
        server.server_close()


async def test_the_jwks_may_come_from_a_url_and_is_refreshed_from_it(
    jwks_server: tuple[str, list[str]], clock: Clock, keys: tuple[SigningKey, SigningKey]
) -> None:
    url, documents = jwks_server
    key, other = keys
    documents.append(jwks(key))
    verifier = TokenVerifier(
        VerifierConfig(issuer=ISSUER, audience=AUDIENCE, leeway_s=30, jwks_url=url), clock=clock
    )
    token = sign(key, claims())
    assert (await verifier.identify(token)).subject == "ann"
    documents.append(jwks(other))
    clock.now += 61
    assert (await refused(verifier, token)).reason is Reason.TOKEN_INVALID
    assert (await verifier.identify(sign(other, claims("bob")))).subject == "bob"


def test_a_jwks_url_is_https_or_loopback_and_one_source_only() -> None:
    check_url("https://id.example.com/.well-known/jwks.json")
    check_url("http://127.0.0.1:8080/jwks.json")
    for bad in ["http://id.example.com/jwks.json", "file:///etc/jwks.json", "ftp://x/y"]:
        with pytest.raises(ValueError, match="must be https"):
            check_url(bad)
    with pytest.raises(ValidationError, match="exclude each other"):
        AuthSettings(jwks_file="/etc/jwks.json", jwks_url="https://id.example.com/jwks")
    with pytest.raises(ValueError, match="a file or a URL"):
        SigningKeys()
    with pytest.raises(ValueError, match="JWKS"):
        TokenVerifier(VerifierConfig(issuer=ISSUER, audience=AUDIENCE, leeway_s=30))
