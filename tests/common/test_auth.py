"""The token verifier: keys kept current from the JWKS, claims of the right
shape, lifetimes bounded. Real ES256 keys and tokens, a JWKS file (or a
loopback server) of the test's own, and a clock the test moves."""

from __future__ import annotations

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
from ticketing_common.jwks import SigningKeys, check_url
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


def verifier_of(path: Path, clock: Clock, **config: Any) -> TokenVerifier:
    return TokenVerifier(
        VerifierConfig(
            issuer=ISSUER,
            audience=AUDIENCE,
            leeway_s=30,
            jwks_file=str(path),
            jwks_refresh_s=REFRESH_S,
            **config,
        ),
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
    tmp_path: Path, clock: Clock, keys: tuple[SigningKey, SigningKey]
) -> None:
    key, _ = keys
    document = tmp_path / "jwks.json"
    document.write_text(jwks(key))
    verifier = verifier_of(document, clock)
    token = sign(key, claims())
    document.write_text("{not json")
    clock.now += REFRESH_S + 1
    assert (await verifier.identify(token)).subject == "ann"
    document.write_text('{"keys": []}')  # every key withdrawn
    clock.now += REFRESH_S + 1
    assert (await refused(verifier, token)).reason is Reason.TOKEN_INVALID


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        (claims(exp=...), 'missing the "exp" claim'),
        (claims(iat=...), 'missing the "iat" claim'),
        (claims(sub=...), 'missing the "sub" claim'),
        (claims(exp=int(time.time()) + 25 * 3600), "lifetime (exp - iat) must be"),
        (
            claims(iat=int(time.time()) - 30 * 24 * 3600, exp=int(time.time()) + 600),
            "at most 86400 s, got 2592600 s",
        ),
        (claims(exp=int(time.time()) + 10, iat=int(time.time()) + 20), "got -10 s"),
    ],
    ids=["no exp", "no iat", "no sub", "lives 25 h", "issued a month ago", "ends before it begins"],
)
async def test_a_token_without_exp_and_iat_or_living_too_long_is_refused(
    tmp_path: Path,
    clock: Clock,
    keys: tuple[SigningKey, SigningKey],
    payload: dict[str, Any],
    problem: str,
) -> None:
    key, _ = keys
    document = tmp_path / "jwks.json"
    document.write_text(jwks(key))
    verifier = verifier_of(document, clock)
    error = await refused(verifier, sign(key, payload))
    assert error.reason is Reason.TOKEN_INVALID
    assert problem in error.message


async def test_the_lifetime_bound_is_a_setting_and_tokens_of_a_day_pass_by_default(
    tmp_path: Path, clock: Clock, keys: tuple[SigningKey, SigningKey]
) -> None:
    key, _ = keys
    document = tmp_path / "jwks.json"
    document.write_text(jwks(key))
    # What the suite's own tests and `ticketing-admin token` mint.
    day = key.mint("ann", ttl_s=24 * 3600)
    assert (await verifier_of(document, clock).identify(day)).subject == "ann"
    short = verifier_of(document, clock, max_lifetime_s=900)
    assert "at most 900 s" in (await refused(short, key.mint("ann", ttl_s=3600))).message
    assert (await short.identify(key.mint("ann", ttl_s=600))).subject == "ann"


@pytest.mark.parametrize(
    ("roles", "shown"),
    [
        ("admin", "'admin'"),
        ("admin customer", "'admin customer'"),
        (5, "a number"),
        (True, "a boolean"),
        (None, "null"),
        ({"admin": True}, "an object"),
        ([["admin"]], "a list holding a list"),
        ([{"role": "admin"}], "a list holding an object"),
        (["customer", 7], "a list holding a number"),
        (["customer", "root"], "a list naming 'root'"),
    ],
)
async def test_roles_that_are_not_a_list_of_known_roles_are_refused(
    tmp_path: Path, clock: Clock, keys: tuple[SigningKey, SigningKey], roles: Any, shown: str
) -> None:
    key, _ = keys
    document = tmp_path / "jwks.json"
    document.write_text(jwks(key))
    error = await refused(verifier_of(document, clock), sign(key, claims(roles=roles)))
    assert error.reason is Reason.TOKEN_INVALID
    assert error.metadata == {"claim": "roles"}
    assert error.message == (
        f"the token's roles claim must be a list of roles (admin, customer), got {shown}"
    )


async def test_roles_as_a_list_are_taken_and_none_given_is_a_customer(
    tmp_path: Path, clock: Clock, keys: tuple[SigningKey, SigningKey]
) -> None:
    key, _ = keys
    document = tmp_path / "jwks.json"
    document.write_text(jwks(key))
    verifier = verifier_of(document, clock)
    both = await verifier.identify(sign(key, claims(roles=["admin", "customer"])))
    assert both.roles == {"admin", "customer"}
    assert (await verifier.identify(sign(key, claims(roles=...)))).roles == {"customer"}
    assert (await verifier.identify(sign(key, claims(roles=[])))).roles == frozenset()


@pytest.mark.parametrize(
    ("tier", "shown"),
    [
        (5, "a number"),
        (None, "null"),
        (["vip"], "a list"),
        ({"name": "vip"}, "an object"),
        ("v" * 65, f"'{'v' * 40}'..."),
        ("vip\n", "'vip\\n'"),
    ],
)
async def test_a_tier_that_is_not_a_short_printable_string_is_refused(
    tmp_path: Path, clock: Clock, keys: tuple[SigningKey, SigningKey], tier: Any, shown: str
) -> None:
    key, _ = keys
    document = tmp_path / "jwks.json"
    document.write_text(jwks(key))
    error = await refused(verifier_of(document, clock), sign(key, claims(tier=tier)))
    assert error.reason is Reason.TOKEN_INVALID
    assert error.metadata == {"claim": "tier"}
    assert error.message == (
        f"the token's tier claim must be a string of at most 64 printable characters, got {shown}"
    )


async def test_a_tier_is_taken_as_given_and_none_or_empty_is_standard(
    tmp_path: Path, clock: Clock, keys: tuple[SigningKey, SigningKey]
) -> None:
    key, _ = keys
    document = tmp_path / "jwks.json"
    document.write_text(jwks(key))
    verifier = verifier_of(document, clock)
    assert (await verifier.identify(sign(key, claims(tier="vip")))).tier == "vip"
    assert (await verifier.identify(sign(key, claims(tier="")))).tier == STANDARD_TIER
    assert (await verifier.identify(sign(key, claims()))).tier == STANDARD_TIER


def test_an_hs256_token_is_refused_whatever_secret_it_was_signed_with(
    tmp_path: Path, clock: Clock, keys: tuple[SigningKey, SigningKey]
) -> None:
    key, _ = keys
    document = tmp_path / "jwks.json"
    document.write_text(jwks(key))
    verifier = verifier_of(document, clock)
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
