"""Who is calling: bearer JWTs, verified once per token, in one interceptor.

Every RPC but health checking and reflection needs an ``authorization:
Bearer <JWT>`` header. The token is verified with PyJWT against the keys of a
JWKS document (ES256 or EdDSA, chosen by the token's ``kid``, so keys rotate by
publishing the new one next to the old) or, as an option, a shared HS256
secret. ``exp``, ``nbf``, ``iss`` and ``aud`` are checked with a small leeway.

The caller is the token's ``sub``; roles (``customer``, ``admin``) and the
priority tier come from claims, never from a request body. Servicers read the
caller with ``caller()``.

A verified token is remembered until it expires (a bounded LRU), so a client
that sends the same token on every call pays for one signature check.
"""

from __future__ import annotations

import contextvars
import time
import unicodedata
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import grpc
import jwt

from .errors import PermissionDenied, Reason, Unauthenticated
from .interceptors import Rewrapped, ServerInterceptor, rewrap

ADMIN = "admin"
CUSTOMER = "customer"
ROLES = frozenset({ADMIN, CUSTOMER})
STANDARD_TIER = "standard"
# Longest subject we store (the reservations table's user_id).
MAX_SUBJECT = 128

# Methods anyone may call: load balancers check health, grpcurl needs reflection.
OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")

ALGORITHMS = ("ES256", "EdDSA")


@dataclass(frozen=True, slots=True)
class Identity:
    subject: str
    roles: frozenset[str] = field(default_factory=frozenset)
    tier: str = STANDARD_TIER

    @property
    def is_admin(self) -> bool:
        return ADMIN in self.roles

    def require(self, role: str) -> None:
        if role not in self.roles:
            raise PermissionDenied(
                f"this call needs the {role} role",
                reason=Reason.ROLE_REQUIRED,
                metadata={"role": role},
            )

    def may_see(self, owner: str) -> bool:
        """Whether this caller may see a reservation of ``owner``."""
        return self.is_admin or owner == self.subject


_caller: contextvars.ContextVar[Identity] = contextvars.ContextVar("ticketing_caller")


def caller() -> Identity:
    """The verified caller of the RPC being served."""
    try:
        return _caller.get()
    except LookupError:  # pragma: no cover - every guarded method runs behind the interceptor
        raise Unauthenticated("no verified caller", reason=Reason.TOKEN_MISSING) from None


@dataclass(frozen=True)
class VerifierConfig:
    """What ``TokenVerifier`` needs, with the settings' meaning."""

    issuer: str
    audience: str
    leeway_s: float
    jwks_file: str | None = None
    hs256_secret: str | None = None
    roles_claim: str = "roles"
    tier_claim: str = "tier"
    cache_size: int = 100_000


class TokenVerifier:
    def __init__(self, config: VerifierConfig) -> None:
        if not (config.jwks_file or config.hs256_secret):
            raise ValueError("a JWKS file or an HS256 secret is needed to verify tokens")
        self._config = config
        self._keys: dict[str, Any] = {}
        self._keys_read_at = 0.0
        self._cache: OrderedDict[str, tuple[Identity, float]] = OrderedDict()
        if config.jwks_file:
            self._read_jwks()

    def _read_jwks(self) -> None:
        assert self._config.jwks_file is not None
        keys = jwt.PyJWKSet.from_json(Path(self._config.jwks_file).read_text())
        self._keys = {k.key_id: k for k in keys.keys if k.key_id}
        self._keys_read_at = time.monotonic()

    def _key_for(self, token: str) -> tuple[Any, Sequence[str]]:
        if self._config.hs256_secret and not self._config.jwks_file:
            return self._config.hs256_secret, ("HS256",)
        header = jwt.get_unverified_header(token)
        kid = header.get("kid")
        if kid not in self._keys and time.monotonic() - self._keys_read_at > 1.0:
            self._read_jwks()  # a rotated key: the file may hold it by now
        if kid in self._keys:
            return self._keys[kid].key, ALGORITHMS
        if self._config.hs256_secret and header.get("alg") == "HS256":
            return self._config.hs256_secret, ("HS256",)
        raise jwt.InvalidTokenError(f"unknown signing key {kid!r}")

    def verify(self, token: str) -> Identity:
        now = time.time()
        cached = self._cache.get(token)
        if cached is not None:
            identity, expires = cached
            if now < expires + self._config.leeway_s:
                self._cache.move_to_end(token)
                return identity
            del self._cache[token]
        try:
            key, algorithms = self._key_for(token)
            claims = jwt.decode(
                token,
                key,
                algorithms=list(algorithms),
                audience=self._config.audience,
                issuer=self._config.issuer,
                leeway=self._config.leeway_s,
                options={"require": ["exp", "sub", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the token has expired", reason=Reason.TOKEN_EXPIRED) from None
        except jwt.PyJWTError as exc:
            raise Unauthenticated(
                f"the token is not valid: {exc}", reason=Reason.TOKEN_INVALID
            ) from None
        identity = self._identity(claims)
        self._cache[token] = (identity, float(claims["exp"]))
        if len(self._cache) > self._config.cache_size:
            self._cache.popitem(last=False)
        return identity

    def _identity(self, claims: Mapping[str, Any]) -> Identity:
        subject = claims["sub"]
        if (
            not isinstance(subject, str)
            or not subject.strip()
            or len(subject) > MAX_SUBJECT
            or any(unicodedata.category(ch).startswith("C") for ch in subject)
        ):
            raise Unauthenticated(
                f"the token's subject must be 1 to {MAX_SUBJECT} printable characters",
                reason=Reason.TOKEN_INVALID,
            )
        raw_roles = claims.get(self._config.roles_claim, [CUSTOMER])
        if isinstance(raw_roles, str):
            raw_roles = raw_roles.split()
        roles = frozenset(r for r in raw_roles if isinstance(r, str)) & ROLES
        tier = claims.get(self._config.tier_claim, STANDARD_TIER)
        return Identity(subject, roles, tier if isinstance(tier, str) else STANDARD_TIER)


def bearer(metadata: Sequence[tuple[str, str | bytes]]) -> str:
    for key, value in metadata:
        if key == "authorization" and isinstance(value, str):
            scheme, _, token = value.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            break
    raise Unauthenticated(
        "an `authorization: Bearer <token>` header is required", reason=Reason.TOKEN_MISSING
    )


class AuthInterceptor(ServerInterceptor):
    """Verifies the caller of every method but the open ones, and makes it
    ``caller()`` for the handler. Installed inside the error interceptor, so
    a refusal is an UNAUTHENTICATED status with its details."""

    def __init__(self, verifier: TokenVerifier) -> None:
        self._verifier = verifier
        self._rewrapped = Rewrapped()

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method.startswith(OPEN_PREFIXES):
            return handler
        return self._rewrapped.get(
            method, handler, lambda: rewrap(handler, self._unary, self._stream)
        )

    def _identify(self, context: grpc.aio.ServicerContext[Any, Any]) -> Identity:
        metadata = cast(Sequence[tuple[str, str | bytes]], context.invocation_metadata() or ())
        return self._verifier.verify(bearer(metadata))

    def _unary(self, behavior: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def wrapped(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            token = _caller.set(self._identify(context))
            try:
                return await behavior(request, context)
            finally:
                _caller.reset(token)

        return wrapped

    def _stream(
        self, behavior: Callable[..., AsyncIterator[Any]]
    ) -> Callable[..., AsyncIterator[Any]]:
        async def wrapped(
            request: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            _caller.set(self._identify(context))  # this generator's own context
            async for item in behavior(request, context):
                yield item

        return wrapped
