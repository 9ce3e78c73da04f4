"""Verification of the signed JWT bearer token every CDS Hooks 2.0 client sends.

Follows "Trusting CDS Clients" in CDS Hooks 2.0: the header carries `alg`, `kid`, `typ`
("JWT") and optionally `jku`; the payload carries `iss`, `aud`, `exp`, `iat`, `jti` and
optionally `tenant`; `none` and symmetric (HMAC) algorithms are never accepted; `aud` is the
URL of the endpoint being called; `iss` and `jku` are checked against allowlists.

Interpretations made here (the spec leaves them open):

* `iss` must equal a configured issuer exactly.
* A `jku` must equal an entry of that issuer's `jku_allowlist` exactly (no prefix matching,
  which would let `https://ehr.example` admit `https://ehr.example.evil`). If the issuer
  also has a configured JWK Set, an unlisted `jku` is ignored and the configured set used.
* Without a `jku`, the issuer's configured JWK Set is used (the spec's "out-of-band" case).
* `aud` is compared exactly, except that one trailing slash on either side is ignored.
* `exp` may be at most `max_lifetime_seconds` (default 5 minutes plus leeway) after `iat`;
  the 5-minute bound comes from earlier CDS Hooks drafts and SMART Backend Services.
* `sub` is optional (2.0 no longer lists it); `kid` and `typ` are required, as in 2.0.
* A `jti` is remembered per issuer until its token expires (plus leeway), and is recorded
  only after the signature and every claim have been verified.
* A failed JWK Set fetch is remembered for `negative_ttl_seconds`, and each issuer may cause at
  most `max_fetches_per_minute` fetches, so forged tokens naming an allowlisted `jku` whose host
  is down cannot turn into a stream of outbound requests.
* Each issuer names the FHIR servers its calls may send us to (`fhir_servers`); the HTTP door's
  FHIR client enforces them (docs/adr/0011-hardening.md).
"""

from __future__ import annotations

import heapq
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import jwt
from jwt.types import Options

from myoguide.adapters.cdshooks.jwks import (
    HttpxJwksFetcher,
    JwksCache,
    JwksFetcher,
    TokenError,
    WouldFetch,
    jwks_keys,
)
from myoguide.service.ports import ReplayCache

__all__ = [
    "DEFAULT_ALGORITHMS",
    "FhirServer",
    "HttpxJwksFetcher",
    "IssuerConfig",
    "JwksCache",
    "JwksFetcher",
    "MemoryReplayCache",
    "ReplayCache",
    "TokenError",
    "TokenVerifier",
    "VerifiedClient",
    "WouldFetch",
    "bearer_token",
    "operation_outcome",
]

_log = logging.getLogger(__name__)

Clock = Callable[[], float]

DEFAULT_ALGORITHMS: Final[tuple[str, ...]] = (
    "RS256",
    "RS384",
    "RS512",
    "ES256",
    "ES384",
    "ES512",
    "PS256",
    "PS384",
    "PS512",
)

# Each accepted algorithm and the JWK key type (and EC curve) it can be verified with.
_KEY_TYPES: Final[Mapping[str, tuple[str, str | None]]] = {
    "RS256": ("RSA", None),
    "RS384": ("RSA", None),
    "RS512": ("RSA", None),
    "PS256": ("RSA", None),
    "PS384": ("RSA", None),
    "PS512": ("RSA", None),
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "ES512": ("EC", "P-521"),
}

# A CDS Hooks token is a few hundred bytes; refusing huge ones bounds parsing work.
_MAX_TOKEN_CHARS: Final = 16_384

_SPEC_MAX_LIFETIME_SECONDS: Final = 300.0

# PyJWT checks only the signature; claims are checked here so the clock is injectable
# and every failure gets its own reason code.
_SIGNATURE_ONLY: Final[Options] = {
    "verify_signature": True,
    "verify_exp": False,
    "verify_nbf": False,
    "verify_iat": False,
    "verify_aud": False,
    "verify_iss": False,
    "verify_sub": False,
    "verify_jti": False,
    "require": [],
    "enforce_minimum_key_length": True,
}

_NO_VERIFICATION: Final[Options] = {"verify_signature": False}


@dataclass(frozen=True)
class FhirServer:
    """A FHIR server a trusted client may send us to; http and private addresses only if said."""

    url: str
    allow_http: bool = False
    allow_private: bool = False


@dataclass(frozen=True)
class IssuerConfig:
    """A trusted CDS client: its `iss`, a configured JWK Set and/or the `jku` URLs allowed."""

    issuer: str
    jwks: Mapping[str, Any] | None = None
    jku_allowlist: tuple[str, ...] = ()
    fhir_servers: tuple[FhirServer, ...] = ()

    def __post_init__(self) -> None:
        """Reject configurations that could never verify a token or that hold private keys."""
        if not self.issuer:
            raise ValueError("issuer must be a non-empty string")
        if self.jwks is None and not self.jku_allowlist:
            raise ValueError(f"issuer {self.issuer!r} needs a JWK Set or a jku allowlist")
        if any(not url for url in self.jku_allowlist):
            raise ValueError(f"issuer {self.issuer!r} has an empty jku allowlist entry")
        if self.jwks is not None:
            keys = jwks_keys(self.jwks)
            if keys is None:
                raise ValueError(f"JWK Set of issuer {self.issuer!r} has no 'keys' list")
            if any("d" in key for key in keys):
                raise ValueError(f"JWK Set of issuer {self.issuer!r} contains private key data")


@dataclass(frozen=True)
class VerifiedClient:
    """Who sent a token that passed verification."""

    issuer: str
    subject: str | None
    jti: str
    tenant: str | None
    kid: str | None


class MemoryReplayCache:
    """In-memory, thread-safe, bounded record of used token ids, forgotten after expiry."""

    def __init__(self, max_entries: int = 100_000, *, clock: Clock = time.time) -> None:
        """Hold at most `max_entries` ids; `clock` gives the current Unix time."""
        if max_entries <= 0:
            raise ValueError("max_entries must be positive")
        self._max = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._expiry: dict[tuple[str, str], float] = {}
        self._by_expiry: list[tuple[float, tuple[str, str]]] = []

    def seen(self, issuer: str, jti: str, expires_at: float) -> bool:
        """Return True if (issuer, jti) was already recorded, else record it until expires_at."""
        key = (issuer, jti)
        now = self._clock()
        with self._lock:
            self._forget_expired(now)
            if key in self._expiry:
                return True
            if expires_at <= now:
                return False
            while len(self._expiry) >= self._max:
                # When full, the id closest to expiry goes first: its token is the
                # one with the least time left to be replayed.
                _, oldest = heapq.heappop(self._by_expiry)
                del self._expiry[oldest]
            self._expiry[key] = expires_at
            heapq.heappush(self._by_expiry, (expires_at, key))
            return False

    def __len__(self) -> int:
        """Return how many unexpired ids are remembered."""
        with self._lock:
            self._forget_expired(self._clock())
            return len(self._expiry)

    def _forget_expired(self, now: float) -> None:
        """Drop every id whose token has expired; the caller holds the lock."""
        while self._by_expiry and self._by_expiry[0][0] <= now:
            _, key = heapq.heappop(self._by_expiry)
            del self._expiry[key]


def _is_number(value: object) -> bool:
    """Tell whether a claim value is a finite JSON number (booleans excluded)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _without_trailing_slash(url: str) -> str:
    """Drop one trailing slash so `.../service` and `.../service/` compare equal."""
    return url[:-1] if url.endswith("/") else url


def _optional_str(claims: Mapping[str, Any], name: str) -> str | None:
    """Return an optional string claim, refusing other types."""
    value = claims.get(name)
    if value is None or isinstance(value, str):
        return value
    raise TokenError("invalid_claim", f"the '{name}' claim must be a string")


class TokenVerifier:
    """Verifies CDS Hooks 2.0 client JWTs against configured issuers."""

    def __init__(
        self,
        issuers: Sequence[IssuerConfig],
        *,
        allowed_algorithms: Iterable[str] = DEFAULT_ALGORITHMS,
        leeway_seconds: float = 30.0,
        max_lifetime_seconds: float | None = None,
        fetcher: JwksFetcher | None = None,
        replay_cache: ReplayCache | None = None,
        clock: Clock = time.time,
        jwks_cache_ttl_seconds: float = 300.0,
    ) -> None:
        """Configure trust; raises ValueError for symmetric, `none` or unknown algorithms."""
        algorithms = frozenset(allowed_algorithms)
        refused = sorted(alg for alg in algorithms if alg not in _KEY_TYPES)
        if refused:
            raise ValueError(
                f"algorithms not allowed for CDS Hooks (asymmetric RS/PS/ES only): {refused}"
            )
        if not algorithms:
            raise ValueError("allowed_algorithms must not be empty")
        if not math.isfinite(leeway_seconds) or leeway_seconds < 0:
            raise ValueError("leeway_seconds must be a finite number >= 0")
        if max_lifetime_seconds is None:
            max_lifetime_seconds = _SPEC_MAX_LIFETIME_SECONDS + leeway_seconds
        if not max_lifetime_seconds > 0:
            raise ValueError("max_lifetime_seconds must be positive")
        by_issuer: dict[str, IssuerConfig] = {}
        for config in issuers:
            if config.issuer in by_issuer:
                raise ValueError(f"issuer {config.issuer!r} is configured twice")
            by_issuer[config.issuer] = config
        self._issuers = by_issuer
        self._algorithms = algorithms
        self._leeway = leeway_seconds
        self._max_lifetime = max_lifetime_seconds
        self._jwks = JwksCache(
            fetcher if fetcher is not None else HttpxJwksFetcher(),
            ttl_seconds=jwks_cache_ttl_seconds,
            clock=clock,
        )
        self._replay = replay_cache if replay_cache is not None else MemoryReplayCache(clock=clock)
        self._clock = clock

    def verify(self, token: str | None, *, audience: str) -> VerifiedClient:
        """Verify a bearer JWT sent to the endpoint URL `audience`; raise TokenError if refused."""
        client, until = self.authenticate(token, audience=audience)
        self.spend(client, until)
        return client

    def authenticate(
        self, token: str | None, *, audience: str, may_fetch: bool = True
    ) -> tuple[VerifiedClient, float]:
        """Check a bearer JWT but not its jti; return the client and when its jti may be forgotten.

        Raise TokenError if refused. With `may_fetch` False nothing here waits on the network or
        a store (an event loop may call it): a JWK Set that must be fetched raises WouldFetch.
        The caller must then `spend` the jti before acting on the call.
        """
        if not audience:
            raise ValueError("audience must be the URL of the endpoint being called")
        if token is None or not token.strip():
            raise TokenError("missing_token", "a bearer token is required")
        token = token.strip()
        if len(token) > _MAX_TOKEN_CHARS:
            raise TokenError("malformed", "the bearer token is too long")
        header, unverified = _unverified_parts(token)
        self._check_header(header)
        alg: str = header["alg"]
        kid: str = header["kid"]
        config = self._issuer_of(unverified)
        key = self._signing_key(config, header, alg, kid, may_fetch=may_fetch)
        claims = self._check_signature(token, key, alg)
        client = self._check_claims(claims, config, audience, kid)
        return client, float(claims["exp"]) + self._leeway

    def spend(self, client: VerifiedClient, until: float) -> None:
        """Record an authenticated token's jti; raise TokenError if it was used before."""
        # Recorded last, so a token that fails any check cannot use up a legitimate jti.
        if self._replay.seen(client.issuer, client.jti, until):
            raise TokenError("replayed", "this token has already been used")

    def _check_header(self, header: Mapping[str, Any]) -> None:
        """Check the JOSE header's alg, typ and kid as CDS Hooks 2.0 requires."""
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._algorithms:
            raise TokenError(
                "algorithm_not_allowed", "the token's signing algorithm is not accepted"
            )
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.upper() != "JWT":
            raise TokenError("invalid_header", "the token header must have typ 'JWT'")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise TokenError("invalid_header", "the token header must name its key (kid)")
        jku = header.get("jku")
        if jku is not None and not isinstance(jku, str):
            raise TokenError("invalid_header", "the token header's jku must be a URL string")

    def _issuer_of(self, unverified: Mapping[str, Any]) -> IssuerConfig:
        """Find the trusted issuer named by the token's (not yet verified) `iss` claim."""
        issuer = unverified.get("iss")
        if issuer is None:
            raise TokenError("missing_claim", "the token has no 'iss' claim")
        config = self._issuers.get(issuer) if isinstance(issuer, str) else None
        if config is None:
            raise TokenError("unknown_issuer", "the token's issuer is not trusted")
        return config

    def _signing_key(
        self,
        config: IssuerConfig,
        header: Mapping[str, Any],
        alg: str,
        kid: str,
        *,
        may_fetch: bool = True,
    ) -> jwt.PyJWK:
        """Pick the issuer's key named by `kid` and bind it to `alg` if their types agree."""
        jku = header.get("jku")
        if jku is not None and jku in config.jku_allowlist:
            jwks, url = self._jwks.get(jku, issuer=config.issuer, may_fetch=may_fetch), jku
        elif jku is not None and config.jwks is None:
            raise TokenError("jku_not_allowed", "the token's jku is not on the allowlist")
        elif config.jwks is not None:
            # The configured set is authoritative; an unlisted jku is ignored, never fetched.
            jwks, url = config.jwks, None
        else:
            raise TokenError("unknown_key", "no JWK Set is known for this issuer without a jku")

        matches = self._keys_with_kid(jwks, kid)
        if not matches and url is not None:
            # The client may have rotated keys since the cached copy was fetched.
            fresh = self._jwks.get(url, refresh=True, issuer=config.issuer, may_fetch=may_fetch)
            matches = self._keys_with_kid(fresh, kid)
        if len(matches) != 1:
            raise TokenError("unknown_key", "the token's kid does not name one known key")
        jwk = matches[0]

        kty, crv = _KEY_TYPES[alg]
        usable = (
            jwk.get("kty") == kty
            and (crv is None or jwk.get("crv") == crv)
            and jwk.get("alg", alg) == alg
            and jwk.get("use", "sig") == "sig"
            and "d" not in jwk
        )
        key_ops = jwk.get("key_ops")
        if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
            usable = False
        if not usable:
            raise TokenError("key_mismatch", "the key named by kid cannot verify this algorithm")
        try:
            return jwt.PyJWK(dict(jwk), algorithm=alg)
        # Fetched keys are outside input; any parse failure must become a refusal, not a 500.
        except (jwt.PyJWTError, LookupError, ValueError, TypeError):
            raise TokenError("key_mismatch", "the key named by kid is not a valid key") from None

    @staticmethod
    def _keys_with_kid(jwks: Mapping[str, Any], kid: str) -> list[Mapping[str, Any]]:
        """Return the keys of a JWK Set whose kid is `kid`."""
        return [key for key in jwks_keys(jwks) or [] if key.get("kid") == kid]

    @staticmethod
    def _check_signature(token: str, key: jwt.PyJWK, alg: str) -> dict[str, Any]:
        """Verify the signature with PyJWT and return the (now authentic) claims."""
        try:
            return jwt.decode(token, key=key, algorithms=[alg], options=_SIGNATURE_ONLY)
        except jwt.InvalidSignatureError:
            raise TokenError("bad_signature", "the token's signature is not valid") from None
        except jwt.InvalidAlgorithmError:
            raise TokenError(
                "algorithm_not_allowed", "the token's signing algorithm is not accepted"
            ) from None
        except jwt.InvalidKeyError:
            raise TokenError("key_mismatch", "the key named by kid is too weak") from None
        except jwt.PyJWTError:
            raise TokenError("malformed", "the bearer token is not a valid JWT") from None

    def _check_claims(
        self, claims: Mapping[str, Any], config: IssuerConfig, audience: str, kid: str
    ) -> VerifiedClient:
        """Check the required claims, their times and the audience."""
        for name in ("iss", "aud", "exp", "iat", "jti"):
            if name not in claims:
                raise TokenError("missing_claim", f"the token has no '{name}' claim")
        if claims["iss"] != config.issuer:
            raise TokenError("unknown_issuer", "the token's issuer is not trusted")
        jti = claims["jti"]
        if not isinstance(jti, str) or not jti:
            raise TokenError("invalid_claim", "the 'jti' claim must be a non-empty string")
        exp, iat = claims["exp"], claims["iat"]
        if not _is_number(exp) or not _is_number(iat):
            raise TokenError("invalid_claim", "the 'exp' and 'iat' claims must be numbers")
        nbf = claims.get("nbf")
        if nbf is not None and not _is_number(nbf):
            raise TokenError("invalid_claim", "the 'nbf' claim must be a number")
        subject = _optional_str(claims, "sub")
        tenant = _optional_str(claims, "tenant")

        now = self._clock()
        if now >= exp + self._leeway:
            raise TokenError("expired", "the token has expired")
        if iat > now + self._leeway:
            raise TokenError("iat_in_future", "the token's issue time is in the future")
        if nbf is not None and nbf > now + self._leeway:
            raise TokenError("not_yet_valid", "the token is not valid yet")
        if exp <= iat:
            raise TokenError("invalid_claim", "the token expires before it was issued")
        if exp - iat > self._max_lifetime:
            raise TokenError("lifetime_too_long", "the token's lifetime exceeds 5 minutes")

        self._check_audience(claims["aud"], audience)
        return VerifiedClient(
            issuer=config.issuer, subject=subject, jti=jti, tenant=tenant, kid=kid
        )

    @staticmethod
    def _check_audience(aud: object, audience: str) -> None:
        """Require `aud` (a string or list of strings) to name the endpoint called."""
        values: list[object] = aud if isinstance(aud, list) else [aud]
        urls = [value for value in values if isinstance(value, str)]
        if len(urls) != len(values):
            raise TokenError("invalid_claim", "the 'aud' claim must be a string or strings")
        expected = _without_trailing_slash(audience)
        if not any(_without_trailing_slash(url) == expected for url in urls):
            raise TokenError("wrong_audience", "the token is not meant for this endpoint")


def _unverified_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return a token's header and claims, unverified: read once, to pick the issuer and key.

    Nothing read here is trusted: PyJWT then checks the signature over the same bytes, and the
    claims acted on are the ones it returns. PyJWT's one reading replaces two (header, claims).
    """
    try:
        parts = jwt.api_jwt.decode_complete(token, options=_NO_VERIFICATION)
    except (jwt.PyJWTError, RecursionError):
        raise TokenError("malformed", "the bearer token is not a valid JWT") from None
    return parts["header"], parts["payload"]


def bearer_token(authorization: str | None) -> str | None:
    """Return the token of an `Authorization: Bearer <token>` header value, or None."""
    if authorization is None:
        return None
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return None
    return credentials.strip()


def operation_outcome(error: TokenError) -> dict[str, Any]:
    """Return the FHIR OperationOutcome to send as the body of a 401 for `error`."""
    return {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": "login" if error.reason == "missing_token" else "security",
                "diagnostics": error.message,
            }
        ],
    }
