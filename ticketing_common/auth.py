"""Who is calling: bearer JWTs, verified once per token, in one interceptor.

Every RPC but health checking and reflection needs an ``authorization:
Bearer <JWT>`` header. The token is verified with PyJWT against the public
keys of a JWKS document (ES256 or EdDSA, chosen by the token's ``kid``, so
keys rotate by publishing the new one next to the old), kept current by
``jwks.SigningKeys``. No shared secret verifies a token: a service that can
check a token cannot mint one.

A token must carry ``sub``, ``iss``, ``aud``, ``iat`` and ``exp``; ``exp``,
``nbf``, ``iat``, ``iss`` and ``aud`` are checked with a small leeway, and a
lifetime (``exp - iat``) over ``max_lifetime_s`` is refused: a stolen token
is worth a bounded time.

The caller is the token's ``sub``; roles (``customer``, ``admin``) and the
priority tier come from claims, never from a request body. A claim of the
wrong shape (roles that are not a list of known roles, a tier that is not a
short printable string) refuses the token, as UNAUTHENTICATED with the reason
in its message. Servicers read the caller with ``caller()``.

A verified token is remembered until it expires (a bounded LRU), so a client
that sends the same token on every call pays for one signature check; an
entry counts only while the key that verified it is still in the JWKS.
"""

from __future__ import annotations

import contextvars
import time
import unicodedata
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, cast

import grpc
import jwt

from .errors import PermissionDenied, Reason, Unauthenticated
from .interceptors import Rewrapped, ServerInterceptor, rewrap
from .jwks import SigningKeys

ADMIN = "admin"
CUSTOMER = "customer"
ROLES = frozenset({ADMIN, CUSTOMER})
STANDARD_TIER = "standard"
# Longest subject we store (the reservations table's user_id).
MAX_SUBJECT = 128
# Longest tier an event may name (as CreateEvent checks its priority tiers).
MAX_TIER = 64

# Methods anyone may call: load balancers check health, grpcurl needs reflection.
OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


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
    jwks_url: str | None = None
    jwks_refresh_s: float = 60.0
    max_lifetime_s: float = 24 * 3600.0
    roles_claim: str = "roles"
    tier_claim: str = "tier"
    cache_size: int = 100_000


class UnknownSigningKey(Unauthenticated):
    """The token names a key the JWKS does not hold (perhaps not yet)."""


class _Verified(NamedTuple):
    identity: Identity
    expires: float
    # The key that verified it: the entry counts while the JWKS holds it.
    key: jwt.PyJWK


class TokenVerifier:
    def __init__(
        self,
        config: VerifierConfig,
        *,
        keys: SigningKeys | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``clock`` times the JWKS refreshes (tests pass their own)."""
        if keys is None:
            if not (config.jwks_file or config.jwks_url):
                raise ValueError(
                    "a JWKS (file or URL) with the public keys is needed to verify tokens"
                )
            keys = SigningKeys(
                file=config.jwks_file,
                url=config.jwks_url,
                refresh_s=config.jwks_refresh_s,
                clock=clock,
            )
        self._config = config
        self._keys = keys
        self._keys_version = keys.version
        self._cache: OrderedDict[str, _Verified] = OrderedDict()

    async def identify(self, token: str) -> Identity:
        """The caller ``token`` stands for, with the keys re-read first when
        they are due, or when the token names a key not held (rate-limited)."""
        if self._keys.stale:
            # After a failed read, the retry runs while calls go on with the
            # keys held: waiting for it would only delay them.
            await self._refresh(wait=not self._keys.failing)
        try:
            return self.verify(token)
        except UnknownSigningKey:
            if not self._keys.may_reread():
                raise
        await self._refresh()  # a rotated key: the JWKS may hold it by now
        return self.verify(token)

    async def _refresh(self, *, wait: bool = True) -> None:
        await self._keys.refresh(wait=wait)
        if self._keys.version != self._keys_version:
            # A key was removed or replaced: forget what it verified.
            self._keys_version = self._keys.version
            self._cache = OrderedDict(
                (token, entry) for token, entry in self._cache.items() if self._current(entry)
            )

    def verify(self, token: str) -> Identity:
        """The caller ``token`` stands for, with the keys held now."""
        now = time.time()
        cached = self._cache.get(token)
        if cached is not None:
            if now < cached.expires + self._config.leeway_s and self._current(cached):
                self._cache.move_to_end(token)
                return cached.identity
            del self._cache[token]
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            key = self._keys.get(kid)
            if key is None:
                raise UnknownSigningKey(
                    f"the token is not valid: unknown signing key {str(kid)[:64]!r}",
                    reason=Reason.TOKEN_INVALID,
                )
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[key.algorithm_name],
                audience=self._config.audience,
                issuer=self._config.issuer,
                leeway=self._config.leeway_s,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the token has expired", reason=Reason.TOKEN_EXPIRED) from None
        except jwt.PyJWTError as exc:
            raise Unauthenticated(
                f"the token is not valid: {exc}", reason=Reason.TOKEN_INVALID
            ) from None
        identity = self._identity(claims)
        self._cache[token] = _Verified(identity, float(claims["exp"]), key)
        if len(self._cache) > self._config.cache_size:
            self._cache.popitem(last=False)
        return identity

    def _current(self, entry: _Verified) -> bool:
        return self._keys.get(entry.key.key_id) is entry.key

    def _identity(self, claims: Mapping[str, Any]) -> Identity:
        subject = claims["sub"]
        if (
            not isinstance(subject, str)
            or not subject.strip()
            or len(subject) > MAX_SUBJECT
            or any(unicodedata.category(ch).startswith("C") for ch in subject)
        ):
            raise _bad_claim(
                "sub", f"the token's subject must be 1 to {MAX_SUBJECT} printable characters"
            )
        # In whole seconds, as PyJWT checked them (int() of each succeeded):
        # an exp past any float (10**400) is a long lifetime, not an error.
        lifetime = int(claims["exp"]) - int(claims["iat"])
        if not 0 < lifetime <= self._config.max_lifetime_s:
            shown = (
                f"{lifetime}" if abs(lifetime) < 10**12 else f"{'-' if lifetime < 0 else ''}10^12+"
            )
            raise _bad_claim(
                "exp",
                f"the token's lifetime (exp - iat) must be more than 0 and at most "
                f"{self._config.max_lifetime_s:g} s, got {shown} s",
            )
        return Identity(subject, self._roles(claims), self._tier(claims))

    def _roles(self, claims: Mapping[str, Any]) -> frozenset[str]:
        name = self._config.roles_claim
        if name not in claims:
            return frozenset({CUSTOMER})
        raw = claims[name]
        if not isinstance(raw, list) or not all(isinstance(r, str) and r in ROLES for r in raw):
            raise _bad_claim(
                name,
                f"the token's {name} claim must be a list of roles "
                f"({', '.join(sorted(ROLES))}), got {_roles_shape(raw)}",
            )
        return frozenset(raw)

    def _tier(self, claims: Mapping[str, Any]) -> str:
        name = self._config.tier_claim
        raw = claims.get(name, "")
        if not isinstance(raw, str) or len(raw) > MAX_TIER or not raw.isprintable():
            raise _bad_claim(
                name,
                f"the token's {name} claim must be a string of at most {MAX_TIER} printable "
                f"characters, got {_shape(raw)}",
            )
        return raw or STANDARD_TIER


def _bad_claim(claim: str, message: str) -> Unauthenticated:
    return Unauthenticated(message, reason=Reason.TOKEN_INVALID, metadata={"claim": claim})


def _roles_shape(value: object) -> str:
    if isinstance(value, list):
        odd = next((v for v in value if not isinstance(v, str) or v not in ROLES), None)
        return f"a list {'naming' if isinstance(odd, str) else 'holding'} {_shape(odd)}"
    return _shape(value)


# What a JSON value of each kind is called in a refusal.
_KINDS: tuple[tuple[type | tuple[type, ...], str], ...] = (
    (type(None), "null"),
    (bool, "a boolean"),  # before int: a bool is an int
    ((int, float), "a number"),
    (dict, "an object"),
    (list, "a list"),
)


def _shape(value: object) -> str:
    """What a claim holds, told without echoing much of it."""
    if isinstance(value, str):
        return f"{value[:40]!r}" + ("..." if len(value) > 40 else "")
    return next((name for kind, name in _KINDS if isinstance(value, kind)), type(value).__name__)


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

    async def _identify(self, context: grpc.aio.ServicerContext[Any, Any]) -> Identity:
        metadata = cast(Sequence[tuple[str, str | bytes]], context.invocation_metadata() or ())
        return await self._verifier.identify(bearer(metadata))

    def _unary(self, behavior: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def wrapped(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            token = _caller.set(await self._identify(context))
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
            _caller.set(await self._identify(context))  # this generator's own context
            async for item in behavior(request, context):
                yield item

        return wrapped
