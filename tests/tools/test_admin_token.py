"""``ticketing-admin token``: it mints only what the services accept."""

from __future__ import annotations

from pathlib import Path

import pytest

from ticketing_common.auth import TokenVerifier, VerifierConfig
from ticketing_common.config import AuthSettings
from ticketing_tools.admin import parser, print_tokens
from ticketing_tools.tokens import AUDIENCE, ISSUER, SigningKey


@pytest.fixture
def written(tmp_path: Path) -> tuple[Path, Path]:
    """The stack's signing key file and its JWKS."""
    return SigningKey.generate().write(tmp_path)


@pytest.fixture
def key_file(written: tuple[Path, Path]) -> Path:
    return written[0]


def tokens(key_file: Path, ttl: str, max_lifetime_s: float) -> int:
    args = parser().parse_args(["token", "--subject", "ann", "--ttl", ttl])
    return print_tokens(args, str(key_file), max_lifetime_s)


def test_a_ttl_over_the_services_maximum_lifetime_is_refused_naming_the_setting(
    key_file: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TICKETING_AUTH_MAX_TOKEN_LIFETIME_S", "900")
    bound = AuthSettings().max_token_lifetime_s  # what main passes, read as the services do
    assert tokens(key_file, "16m", bound) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        "--ttl 960 s is longer than the services accept: they refuse a token living over "
        "900 s (TICKETING_AUTH_MAX_TOKEN_LIFETIME_S) as UNAUTHENTICATED; ask for a shorter --ttl\n"
    )
    # The default bound is a day: two days are refused, a day is minted.
    assert tokens(key_file, "48h", AuthSettings.model_fields["max_token_lifetime_s"].default) == 2


async def test_a_ttl_within_the_maximum_mints_a_token_the_services_accept(
    written: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    key_file, jwks = written
    assert tokens(key_file, "15m", 900) == 0
    token = capsys.readouterr().out.strip()
    verifier = TokenVerifier(
        VerifierConfig(
            issuer=ISSUER, audience=AUDIENCE, leeway_s=30, jwks_file=str(jwks), max_lifetime_s=900
        )
    )
    assert (await verifier.identify(token)).subject == "ann"
