"""Verification of the id_token a SMART token response carries (OpenID Connect core, 3.1.3.7)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Final

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

# Asymmetric only: an HMAC id_token would be signed with the client secret, which a public
# client does not have, and `none` is never accepted.
ALGORITHMS: Final = ("RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384")
_LEEWAY_SECONDS: Final = 60


class IdTokenError(Exception):
    """The id_token was refused; the message says why, for the page (never the token)."""


def verify_id_token(
    id_token: object,
    jwks: Mapping[str, Any],
    *,
    issuer: str,
    client_id: str,
    nonce: str,
    now: float | None = None,
) -> str:
    """Verify signature (JWKS), iss, aud, exp and nonce; return the `fhirUser` claim."""
    if not isinstance(id_token, str) or not id_token or len(id_token) > 16_384:
        raise IdTokenError("the EHR's answer carried no id_token")
    try:
        keys = KeySet.import_key_set(dict(jwks))  # type: ignore[arg-type]
        token = jwt.decode(id_token, keys, algorithms=list(ALGORITHMS))
    except (JoseError, ValueError, TypeError, KeyError):
        raise IdTokenError("the id_token's signature could not be verified") from None
    claims = token.claims
    registry = jwt.JWTClaimsRegistry(
        now=int(now if now is not None else time.time()),
        leeway=_LEEWAY_SECONDS,
        iss={"essential": True, "value": issuer},
        aud={"essential": True, "value": client_id},
        exp={"essential": True},
        nonce={"essential": True, "value": nonce},
    )
    try:
        registry.validate(claims)
    except JoseError as exc:
        raise IdTokenError(f"the id_token was refused ({exc.error})") from None
    user = claims.get("fhirUser")
    if not isinstance(user, str) or not user or len(user) > 500:
        raise IdTokenError("the id_token does not say who is signed in (no fhirUser)")
    return user
