"""Signing keys and tokens for a local stack (and for tests, the bench and
the demo): what an identity provider does in production.

A stack gets an ES256 key of its own; the services verify with its public
half, published as a JWKS file. ``ticketing-admin token`` mints with the
private half, which only the stack's temporary directory holds (mode 0600).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ticketing_common.auth import CUSTOMER

from .private import write_private

ISSUER = "ticketing"
AUDIENCE = "ticketing"


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_pem: bytes

    @classmethod
    def generate(cls) -> SigningKey:
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return cls(kid=f"local-{secrets.token_hex(4)}", private_pem=pem)

    @classmethod
    def load(cls, path: Path) -> SigningKey:
        """A PEM private key; its kid is the file's name without suffix."""
        return cls(kid=path.stem, private_pem=path.read_bytes())

    def jwks(self) -> str:
        private = serialization.load_pem_private_key(self.private_pem, password=None)
        public = private.public_key()
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(public))  # type: ignore[arg-type]
        jwk.update({"kid": self.kid, "use": "sig", "alg": "ES256"})
        return json.dumps({"keys": [jwk]})

    def write(self, folder: Path) -> tuple[Path, Path]:
        """Writes the private key (0600) and the JWKS; returns their paths."""
        key_file = folder / f"{self.kid}.pem"
        write_private(key_file, self.private_pem)
        jwks_file = write_private(folder / "jwks.json", self.jwks())
        return key_file, jwks_file

    def mint(
        self,
        subject: str,
        *,
        roles: Iterable[str] = (CUSTOMER,),
        ttl_s: float = 3600.0,
        tier: str | None = None,
        issuer: str = ISSUER,
        audience: str = AUDIENCE,
        now: float | None = None,
    ) -> str:
        issued = time.time() if now is None else now
        claims: dict[str, object] = {
            "sub": subject,
            "iss": issuer,
            "aud": audience,
            "iat": int(issued),
            "nbf": int(issued),
            "exp": int(issued + ttl_s),
            "roles": sorted(set(roles)),
        }
        if tier is not None:
            claims["tier"] = tier
        return jwt.encode(claims, self.private_pem, algorithm="ES256", headers={"kid": self.kid})


def bearer(token: str) -> tuple[tuple[str, str]]:
    """gRPC metadata carrying ``token``."""
    return (("authorization", f"Bearer {token}"),)


class _WithToken:
    """Adds ``authorization`` to every call that does not carry its own."""

    def __init__(self, token: str) -> None:
        self._header = ("authorization", f"Bearer {token}")

    def _with_token(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        metadata = list(details.metadata or ())
        if any(key == "authorization" for key, _ in metadata):
            return details
        return grpc.aio.ClientCallDetails(
            details.method,
            details.timeout,
            grpc.aio.Metadata(*metadata, self._header),
            details.credentials,
            details.wait_for_ready,
        )


# grpc.aio files an interceptor under one kind of call only: one class each.
class _UnaryToken(_WithToken, grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[type-arg]
    async def intercept_unary_unary(
        self, continuation: Any, client_call_details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        return await continuation(self._with_token(client_call_details), request)


class _StreamToken(_WithToken, grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[type-arg]
    async def intercept_unary_stream(
        self, continuation: Any, client_call_details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        return await continuation(self._with_token(client_call_details), request)


def authorized_channel(
    target: str, token: str, credentials: grpc.ChannelCredentials | None = None
) -> grpc.aio.Channel:
    """A channel whose calls carry ``token`` unless they bring their own:
    plaintext, or TLS with ``credentials``. Each channel has a connection of
    its own, as each client would (gRPC would otherwise share one among the
    process's channels to the same target, and nginx takes 128 concurrent
    streams per connection)."""
    interceptors = [_UnaryToken(token), _StreamToken(token)]
    options = [("grpc.use_local_subchannel_pool", 1)]
    if credentials is None:
        return grpc.aio.insecure_channel(target, options=options, interceptors=interceptors)  # type: ignore[arg-type]
    return grpc.aio.secure_channel(target, credentials, options=options, interceptors=interceptors)  # type: ignore[arg-type]
