"""Tests of the CDS Hooks 2.0 client-token verifier, with keys generated at test time."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from myoguide.adapters.cdshooks.security import (
    HttpxJwksFetcher,
    IssuerConfig,
    JwksCache,
    MemoryReplayCache,
    TokenError,
    TokenVerifier,
    VerifiedClient,
    WouldFetch,
    bearer_token,
    operation_outcome,
)

NOW = 1_700_000_000.0
ISSUER = "https://ehr.example.org/fhir"
JKU_ISSUER = "https://other-ehr.example.net"
JKU = "https://other-ehr.example.net/.well-known/jwks.json"
AUDIENCE = "https://cds.example.org/cds-services/myoguide"

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


# ── helpers ─────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class SigningKey:
    """A private key made for the test run, with the kid and alg it signs under."""

    kid: str
    alg: str
    private: PrivateKey

    def public_jwk(self) -> dict[str, Any]:
        """Return the public half as a JWK carrying this key's kid."""
        public = self.private.public_key()
        if isinstance(public, rsa.RSAPublicKey):
            jwk = RSAAlgorithm.to_jwk(public, as_dict=True)
        else:
            jwk = ECAlgorithm.to_jwk(public, as_dict=True)
        return {**jwk, "kid": self.kid, "use": "sig"}

    def public_pem(self) -> bytes:
        """Return the public half as PEM bytes."""
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def jwks_of(*keys: SigningKey) -> dict[str, Any]:
    """Return a JWK Set holding the public halves of `keys`."""
    return {"keys": [key.public_jwk() for key in keys]}


class FakeClock:
    """A settable clock standing in for time.time."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class FakeFetcher:
    """A JwksFetcher serving canned documents and recording each request."""

    documents: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)

    def fetch(self, url: str) -> Mapping[str, Any]:
        self.calls.append(url)
        if url not in self.documents:
            raise TokenError("jwks_unavailable", "the client's JWK Set could not be fetched")
        return self.documents[url]


DROP: Any = object()


@dataclass
class TokenFactory:
    """Signs client tokens that are valid at the fake clock's time unless told otherwise."""

    clock: FakeClock

    def __call__(
        self, key: SigningKey, *, headers: Mapping[str, Any] | None = None, **claims: Any
    ) -> str:
        payload = {**claims_at(self.clock.now), **claims}
        payload = {name: value for name, value in payload.items() if value is not DROP}
        header = {"kid": key.kid, "typ": "JWT", **(headers or {})}
        return jwt.encode(payload, key.private, algorithm=key.alg, headers=header)


def claims_at(now: float) -> dict[str, Any]:
    """Return a full, valid CDS Hooks claim set issued at `now`."""
    return {
        "iss": ISSUER,
        "sub": "ehr-client-id",
        "aud": AUDIENCE,
        "iat": int(now),
        "exp": int(now) + 300,
        "jti": str(uuid.uuid4()),
        "tenant": "org-1",
    }


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(value: object) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def assert_refused(
    verifier: TokenVerifier, token: str | None, reason: str, audience: str = AUDIENCE
) -> TokenError:
    """Check that `token` is refused for `reason` and that the error never echoes it."""
    with pytest.raises(TokenError) as caught:
        verifier.verify(token, audience=audience)
    error = caught.value
    assert error.reason == reason, error.message
    for part in (token or "").split("."):
        if len(part) >= 8:
            assert part not in error.message
            assert part not in str(error)
            assert part not in json.dumps(operation_outcome(error))
    return error


# ── fixtures ────────────────────────────────────────────────────────────────


@pytest.fixture(scope="module")
def rsa_key() -> SigningKey:
    return SigningKey("rsa-1", "RS256", rsa.generate_private_key(65537, 2048))


@pytest.fixture(scope="module")
def ec256_key() -> SigningKey:
    return SigningKey("ec-256", "ES256", ec.generate_private_key(ec.SECP256R1()))


@pytest.fixture(scope="module")
def ec384_key() -> SigningKey:
    return SigningKey("ec-384", "ES384", ec.generate_private_key(ec.SECP384R1()))


@pytest.fixture(scope="module")
def jku_key() -> SigningKey:
    return SigningKey("jku-rsa", "RS384", rsa.generate_private_key(65537, 2048))


@pytest.fixture(scope="module")
def stranger_key() -> SigningKey:
    """A key nobody trusts, reusing a trusted kid to impersonate its owner."""
    return SigningKey("rsa-1", "RS256", rsa.generate_private_key(65537, 2048))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fetcher(jku_key: SigningKey) -> FakeFetcher:
    return FakeFetcher(documents={JKU: jwks_of(jku_key)})


@pytest.fixture
def make_token(clock: FakeClock) -> TokenFactory:
    return TokenFactory(clock)


@pytest.fixture
def replay_cache(clock: FakeClock) -> MemoryReplayCache:
    return MemoryReplayCache(clock=clock)


@pytest.fixture
def verifier(
    rsa_key: SigningKey,
    ec256_key: SigningKey,
    ec384_key: SigningKey,
    fetcher: FakeFetcher,
    replay_cache: MemoryReplayCache,
    clock: FakeClock,
) -> TokenVerifier:
    """A verifier trusting one issuer by configured JWK Set and one by an allowlisted jku."""
    return TokenVerifier(
        [
            IssuerConfig(ISSUER, jwks=jwks_of(rsa_key, ec256_key, ec384_key)),
            IssuerConfig(JKU_ISSUER, jku_allowlist=(JKU,)),
        ],
        fetcher=fetcher,
        replay_cache=replay_cache,
        clock=clock,
    )


Route = Callable[[BaseHTTPRequestHandler], None]


@dataclass
class LocalServer:
    """A tiny HTTP server on 127.0.0.1; tests register routes by path."""

    port: int
    routes: dict[str, Route]
    stop: threading.Event

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
def local_server() -> Iterator[LocalServer]:
    """Run a threaded http.server for the test; slow routes wait on `stop` to end early."""
    routes: dict[str, Route] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            route = routes.get(self.path)
            try:
                if route is None:
                    self.send_error(404)
                else:
                    route(self)
            except OSError:
                pass  # the client hung up first, which the timeout tests do on purpose

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    stop = threading.Event()
    try:
        yield LocalServer(server.server_address[1], routes, stop)
    finally:
        stop.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def send_body(handler: BaseHTTPRequestHandler, body: bytes, status: int = 200) -> None:
    """Answer a request with `body` as JSON."""
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


# ── tokens that pass ────────────────────────────────────────────────────────


def test_valid_rs256_token_passes(
    verifier: TokenVerifier, make_token: TokenFactory, rsa_key: SigningKey
) -> None:
    token = make_token(rsa_key, jti="jti-1")

    client = verifier.verify(token, audience=AUDIENCE)

    assert client == VerifiedClient(
        issuer=ISSUER, subject="ehr-client-id", jti="jti-1", tenant="org-1", kid="rsa-1"
    )


@pytest.mark.parametrize("key_name", ["ec256_key", "ec384_key"])
def test_valid_ecdsa_tokens_pass(
    verifier: TokenVerifier,
    make_token: TokenFactory,
    key_name: str,
    request: pytest.FixtureRequest,
) -> None:
    key: SigningKey = request.getfixturevalue(key_name)

    client = verifier.verify(make_token(key), audience=AUDIENCE)

    assert client.kid == key.kid
    assert client.issuer == ISSUER


def test_sub_and_tenant_are_optional(
    verifier: TokenVerifier, make_token: TokenFactory, rsa_key: SigningKey
) -> None:
    client = verifier.verify(make_token(rsa_key, sub=DROP, tenant=DROP), audience=AUDIENCE)

    assert client.subject is None
    assert client.tenant is None


def test_token_within_leeway_of_expiry_passes(
    verifier: TokenVerifier, make_token: TokenFactory, rsa_key: SigningKey, clock: FakeClock
) -> None:
    token = make_token(rsa_key)
    clock.advance(300 + 29)

    assert verifier.verify(token, audience=AUDIENCE).kid == "rsa-1"


# ── malformed and missing tokens ────────────────────────────────────────────


@pytest.mark.parametrize("token", [None, "", "   "])
def test_missing_token_is_refused(verifier: TokenVerifier, token: str | None) -> None:
    error = assert_refused(verifier, token, "missing_token")

    outcome = operation_outcome(error)
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "login"


@pytest.mark.parametrize(
    "token",
    [
        "not-a-jwt",
        "a.b.c",
        "eyJhbGciOiJSUzI1NiJ9",
        f"{b64json(['not', 'an', 'object'])}.{b64json({})}.c2ln",
        "x" * 20_000,
    ],
)
def test_malformed_token_is_refused(verifier: TokenVerifier, token: str) -> None:
    assert_refused(verifier, token, "malformed")


def test_payload_that_is_not_json_is_refused(verifier: TokenVerifier, rsa_key: SigningKey) -> None:
    token = f"{b64json({'alg': 'RS256', 'typ': 'JWT', 'kid': rsa_key.kid})}.{b64url(b'{{')}.c2ln"

    assert_refused(verifier, token, "malformed")


# ── algorithm attacks ───────────────────────────────────────────────────────


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_alg_none_is_refused(verifier: TokenVerifier, clock: FakeClock, alg: str) -> None:
    header = {"alg": alg, "typ": "JWT", "kid": "rsa-1"}
    token = f"{b64json(header)}.{b64json(claims_at(clock.now))}."

    assert_refused(verifier, token, "algorithm_not_allowed")


def test_alg_none_without_kid_or_typ_is_refused(verifier: TokenVerifier, clock: FakeClock) -> None:
    token = f"{b64json({'alg': 'none'})}.{b64json(claims_at(clock.now))}."

    assert_refused(verifier, token, "algorithm_not_allowed")


def test_hs256_signed_with_the_public_key_is_refused(
    verifier: TokenVerifier, rsa_key: SigningKey, clock: FakeClock
) -> None:
    # The classic confusion attack: HMAC keyed with the verifier's own public key.
    signing_input = (
        f"{b64json({'alg': 'HS256', 'typ': 'JWT', 'kid': rsa_key.kid})}."
        f"{b64json(claims_at(clock.now))}"
    )
    for secret in (rsa_key.public_pem(), json.dumps(rsa_key.public_jwk()).encode()):
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        assert_refused(verifier, f"{signing_input}.{b64url(mac)}", "algorithm_not_allowed")


def test_algorithm_outside_the_configured_list_is_refused(
    rsa_key: SigningKey, make_token: TokenFactory, clock: FakeClock
) -> None:
    verifier = TokenVerifier(
        [IssuerConfig(ISSUER, jwks=jwks_of(rsa_key))],
        allowed_algorithms=["ES384"],
        fetcher=FakeFetcher(),
        clock=clock,
    )

    assert_refused(verifier, make_token(rsa_key), "algorithm_not_allowed")


@pytest.mark.parametrize(
    "algorithms",
    [["HS256"], ["RS256", "HS512"], ["none"], ["RS256", "none"], ["EdDSA"], []],
)
def test_verifier_refuses_symmetric_none_or_unknown_algorithms(
    rsa_key: SigningKey, algorithms: list[str]
) -> None:
    with pytest.raises(ValueError, match="algorithm"):
        TokenVerifier(
            [IssuerConfig(ISSUER, jwks=jwks_of(rsa_key))],
            allowed_algorithms=algorithms,
            fetcher=FakeFetcher(),
        )


def test_rs256_header_naming_an_ec_key_is_refused(
    verifier: TokenVerifier, make_token: TokenFactory, rsa_key: SigningKey, ec256_key: SigningKey
) -> None:
    token = make_token(rsa_key, headers={"kid": ec256_key.kid})

    assert_refused(verifier, token, "key_mismatch")


def test_es256_header_naming_a_p384_key_is_refused(
    verifier: TokenVerifier, make_token: TokenFactory, ec256_key: SigningKey, ec384_key: SigningKey
) -> None:
    token = make_token(ec256_key, headers={"kid": ec384_key.kid})

    assert_refused(verifier, token, "key_mismatch")


def test_jwk_alg_must_match_header_alg(
    rsa_key: SigningKey, make_token: TokenFactory, clock: FakeClock
) -> None:
    jwk = {**rsa_key.public_jwk(), "alg": "RS512"}
    verifier = TokenVerifier(
        [IssuerConfig(ISSUER, jwks={"keys": [jwk]})], fetcher=FakeFetcher(), clock=clock
    )

    assert_refused(verifier, make_token(rsa_key), "key_mismatch")


@pytest.mark.filterwarnings("ignore::jwt.InsecureKeyLengthWarning")
def test_rsa_key_under_2048_bits_is_refused(make_token: TokenFactory, clock: FakeClock) -> None:
    weak = SigningKey("weak", "RS256", rsa.generate_private_key(65537, 1024))
    verifier = TokenVerifier(
        [IssuerConfig(ISSUER, jwks=jwks_of(weak))], fetcher=FakeFetcher(), clock=clock
    )

    assert_refused(verifier, make_token(weak), "key_mismatch")


# ── header rules ────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    "changes", [{"typ": None}, {"typ": "at+jwt"}, {"kid": None}, {"kid": ""}, {"jku": 7}]
)
def test_header_must_carry_typ_jwt_and_kid(
    verifier: TokenVerifier,
    make_token: TokenFactory,
    rsa_key: SigningKey,
    changes: dict[str, Any],
) -> None:
    # The header is checked before the signature, so editing it after signing is enough.
    header, payload, signature = make_token(rsa_key).split(".")
    edited = {**json.loads(base64.urlsafe_b64decode(header + "==")), **changes}
    edited = {name: value for name, value in edited.items() if value is not None}

    assert_refused(verifier, f"{b64json(edited)}.{payload}.{signature}", "invalid_header")


def test_unsupported_critical_header_is_refused(
    verifier: TokenVerifier, make_token: TokenFactory, rsa_key: SigningKey
) -> None:
    token = make_token(rsa_key, headers={"crit": ["exp-ext"], "exp-ext": 1})

    assert_refused(verifier, token, "malformed")


# ── issuer and key selection ────────────────────────────────────────────────


def test_unknown_issuer_is_refused(
    verifier: TokenVerifier, make_token: TokenFactory, rsa_key: SigningKey
) -> None:
    assert_refused(verifier, make_token(rsa_key, iss="https://evil.example.com"), "unknown_issuer")


def test_issuer_is_compared_exactly(
    verifier: TokenVerifier, make_token: TokenFactory, rsa_key: SigningKey
) -> None:
    assert_refused(verifier, make_token(rsa_key, iss=ISSUER + "/"), "unknown_issuer")


def test_unknown_kid_is_refused(
    verifier: TokenVerifier, make_token: TokenFactory, rsa_key: SigningKey
) -> None:
    token = make_token(rsa_key, headers={"kid": "no-such-key"})

    assert_refused(verifier, token, "unknown_key")


def test_signature_by_another_key_is_refused(
    verifier: TokenVerifier, make_token: TokenFactory, stranger_key: SigningKey
) -> None:
    assert_refused(verifier, make_token(stranger_key), "bad_signature")


def test_tampered_payload_is_refused(
    verifier: TokenVerifier, make_token: TokenFactory, rsa_key: SigningKey, clock: FakeClock
) -> None:
    header, _, signature = make_token(rsa_key).split(".")
    forged = {**claims_at(clock.now), "tenant": "someone-else"}

    assert_refused(verifier, f"{header}.{b64json(forged)}.{signature}", "bad_signature")


# ── claims ──────────────────────────────────────────────────────────────────


def test_expired_token_is_refused(
    verifier: TokenVerifier, make_token: TokenFactory, rsa_key: SigningKey, clock: FakeClock
) -> None:
    token = make_token(rsa_key)
    clock.advance(300 + 30)

    assert_refused(verifier, token, "expired")


def test_iat_in_future_is_refused(
    verifier: TokenVerifier, make_token: TokenFactory, rsa_key: SigningKey, clock: FakeClock
) -> None:
    now = int(clock.now)
    token = make_token(rsa_key, iat=now + 60, exp=now + 120)

    assert_refused(verifier, token, "iat_in_future")


def test_iat_slightly_ahead_within_leeway_passes(
    verifier: TokenVerifier, make_token: TokenFactory, rsa_key: SigningKey, clock: FakeClock
) -> None:
    now = int(clock.now)

    verifier.verify(make_token(rsa_key, iat=now + 20, exp=now + 200), audience=AUDIENCE)


def test_nbf_in_future_is_refused(
    verifier: TokenVerifier, make_token: TokenFactory, rsa_key: SigningKey, clock: FakeClock
) -> None:
    assert_refused(verifier, make_token(rsa_key, nbf=int(clock.now) + 120), "not_yet_valid")


def test_lifetime_over_five_minutes_is_refused(
    verifier: TokenVerifier, make_token: TokenFactory, rsa_key: SigningKey, clock: FakeClock
) -> None:
    now = int(clock.now)

    verifier.verify(make_token(rsa_key, iat=now, exp=now + 330), audience=AUDIENCE)
    assert_refused(verifier, make_token(rsa_key, iat=now, exp=now + 331), "lifetime_too_long")
    assert_refused(verifier, make_token(rsa_key, iat=now, exp=now + 3600), "lifetime_too_long")


def test_exp_before_iat_is_refused(
    verifier: TokenVerifier, make_token: TokenFactory, rsa_key: SigningKey, clock: FakeClock
) -> None:
    now = int(clock.now)

    assert_refused(verifier, make_token(rsa_key, iat=now, exp=now - 5), "invalid_claim")


def test_wrong_audience_is_refused(
    verifier: TokenVerifier, make_token: TokenFactory, rsa_key: SigningKey
) -> None:
    other = "https://cds.example.org/cds-services/other-service"

    assert_refused(verifier, make_token(rsa_key, aud=other), "wrong_audience")
    assert_refused(verifier, make_token(rsa_key, aud=[other]), "wrong_audience")
    assert_refused(verifier, make_token(rsa_key, aud=[]), "wrong_audience")
    assert_refused(verifier, make_token(rsa_key, aud=AUDIENCE.upper()), "wrong_audience")


@pytest.mark.parametrize(
    ("claimed", "called"),
    [
        (AUDIENCE + "/", AUDIENCE),
        (AUDIENCE, AUDIENCE + "/"),
        ([AUDIENCE + "/"], AUDIENCE),
        (["https://elsewhere.example.org", AUDIENCE], AUDIENCE),
    ],
)
def test_audience_trailing_slash_and_list_are_accepted(
    verifier: TokenVerifier,
    make_token: TokenFactory,
    rsa_key: SigningKey,
    claimed: str | list[str],
    called: str,
) -> None:
    verifier.verify(make_token(rsa_key, aud=claimed), audience=called)


@pytest.mark.parametrize("claim", ["iss", "aud", "exp", "iat", "jti"])
def test_each_required_claim_must_be_present(
    verifier: TokenVerifier, make_token: TokenFactory, rsa_key: SigningKey, claim: str
) -> None:
    error = assert_refused(verifier, make_token(rsa_key, **{claim: DROP}), "missing_claim")

    assert claim in error.message
    assert operation_outcome(error)["issue"][0]["code"] == "security"


@pytest.mark.parametrize(
    "claims",
    [
        {"jti": ""},
        {"jti": 42},
        {"exp": "tomorrow"},
        {"iat": True},
        {"aud": [AUDIENCE, 3]},
        {"sub": 12},
        {"tenant": ["a"]},
    ],
)
def test_claims_of_the_wrong_type_are_refused(
    verifier: TokenVerifier,
    make_token: TokenFactory,
    rsa_key: SigningKey,
    claims: dict[str, Any],
) -> None:
    assert_refused(verifier, make_token(rsa_key, **claims), "invalid_claim")


# ── replay ──────────────────────────────────────────────────────────────────


def test_replayed_jti_is_refused_but_a_new_jti_passes(
    verifier: TokenVerifier, make_token: TokenFactory, rsa_key: SigningKey
) -> None:
    token = make_token(rsa_key, jti="once")
    verifier.verify(token, audience=AUDIENCE)

    assert_refused(verifier, token, "replayed")
    assert_refused(verifier, make_token(rsa_key, jti="once"), "replayed")
    assert verifier.verify(make_token(rsa_key, jti="twice"), audience=AUDIENCE).jti == "twice"


def test_refused_tokens_do_not_use_up_their_jti(
    verifier: TokenVerifier,
    make_token: TokenFactory,
    rsa_key: SigningKey,
    stranger_key: SigningKey,
) -> None:
    assert_refused(verifier, make_token(stranger_key, jti="shared"), "bad_signature")
    assert_refused(verifier, make_token(rsa_key, jti="shared", aud="https://x"), "wrong_audience")

    assert verifier.verify(make_token(rsa_key, jti="shared"), audience=AUDIENCE).jti == "shared"


def test_same_jti_from_two_issuers_is_not_a_replay(
    verifier: TokenVerifier, make_token: TokenFactory, rsa_key: SigningKey, jku_key: SigningKey
) -> None:
    verifier.verify(make_token(rsa_key, jti="same"), audience=AUDIENCE)

    token = make_token(jku_key, iss=JKU_ISSUER, jti="same", headers={"jku": JKU})
    assert verifier.verify(token, audience=AUDIENCE).issuer == JKU_ISSUER


def test_memory_replay_cache_forgets_expired_entries(clock: FakeClock) -> None:
    cache = MemoryReplayCache(clock=clock)

    assert cache.seen("iss", "a", NOW + 60) is False
    assert cache.seen("iss", "a", NOW + 60) is True
    assert cache.seen("other-iss", "a", NOW + 60) is False
    clock.advance(61)

    assert len(cache) == 0
    assert cache.seen("iss", "a", NOW + 200) is False


def test_memory_replay_cache_stays_bounded(clock: FakeClock) -> None:
    cache = MemoryReplayCache(max_entries=3, clock=clock)
    for index, lifetime in enumerate([50, 10, 40, 30, 20]):
        assert cache.seen("iss", f"jti-{index}", NOW + lifetime) is False

    assert len(cache) == 3
    # The ids closest to expiry (lifetimes 10 and 30) were dropped to make room.
    assert cache.seen("iss", "jti-0", NOW + 50) is True
    assert cache.seen("iss", "jti-2", NOW + 40) is True
    assert cache.seen("iss", "jti-4", NOW + 20) is True
    assert len(cache) == 3


def test_memory_replay_cache_records_one_winner_across_threads(clock: FakeClock) -> None:
    cache = MemoryReplayCache(clock=clock)
    results: list[bool] = []
    start = threading.Barrier(8)

    def use_token() -> None:
        start.wait()
        results.append(cache.seen("iss", "raced", NOW + 60))

    threads = [threading.Thread(target=use_token) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(results) == [False] + [True] * 7


# ── jku and the JWK Set cache ───────────────────────────────────────────────


def test_allowlisted_jku_is_fetched_once_and_cached(
    verifier: TokenVerifier, make_token: TokenFactory, jku_key: SigningKey, fetcher: FakeFetcher
) -> None:
    for _ in range(2):
        token = make_token(jku_key, iss=JKU_ISSUER, headers={"jku": JKU})
        assert verifier.verify(token, audience=AUDIENCE).issuer == JKU_ISSUER

    assert fetcher.calls == [JKU]


def test_the_event_loop_check_never_fetches_and_spends_no_jti(
    verifier: TokenVerifier, make_token: TokenFactory, jku_key: SigningKey, fetcher: FakeFetcher
) -> None:
    # Issue 24: the door checks on the event loop with may_fetch=False, then spends the jti
    # in its one worker-thread hop.
    token = make_token(jku_key, iss=JKU_ISSUER, headers={"jku": JKU}, jti="loop")
    with pytest.raises(WouldFetch):
        verifier.authenticate(token, audience=AUDIENCE, may_fetch=False)
    assert fetcher.calls == []
    client, until = verifier.authenticate(token, audience=AUDIENCE)  # the thread's way
    assert fetcher.calls == [JKU]
    # Cached now: the loop's check passes without the network, as often as asked.
    assert verifier.authenticate(token, audience=AUDIENCE, may_fetch=False)[0] == client
    verifier.spend(client, until)
    with pytest.raises(TokenError) as refused:
        verifier.spend(client, until)
    assert refused.value.reason == "replayed"


def test_jku_not_on_allowlist_is_refused_without_fetching(
    verifier: TokenVerifier, make_token: TokenFactory, jku_key: SigningKey, fetcher: FakeFetcher
) -> None:
    evil = "https://other-ehr.example.net.evil.example/jwks.json"
    fetcher.documents[evil] = jwks_of(jku_key)

    for jku in (evil, JKU + "?x=1", "https://other-ehr.example.net/"):
        token = make_token(jku_key, iss=JKU_ISSUER, headers={"jku": jku})
        assert_refused(verifier, token, "jku_not_allowed")
    assert fetcher.calls == []


def test_jku_issuer_token_without_jku_is_refused(
    verifier: TokenVerifier, make_token: TokenFactory, jku_key: SigningKey, fetcher: FakeFetcher
) -> None:
    assert_refused(verifier, make_token(jku_key, iss=JKU_ISSUER), "unknown_key")
    assert fetcher.calls == []


def test_unlisted_jku_is_ignored_when_the_issuer_has_a_configured_jwks(
    verifier: TokenVerifier, make_token: TokenFactory, rsa_key: SigningKey, fetcher: FakeFetcher
) -> None:
    token = make_token(rsa_key, headers={"jku": "https://attacker.example/jwks.json"})

    assert verifier.verify(token, audience=AUDIENCE).issuer == ISSUER
    assert fetcher.calls == []


def test_another_issuers_allowlisted_jku_does_not_help(
    verifier: TokenVerifier, make_token: TokenFactory, jku_key: SigningKey, fetcher: FakeFetcher
) -> None:
    # Issuer A's configured keys stay authoritative even if the jku is trusted for issuer B.
    token = make_token(jku_key, headers={"jku": JKU})

    assert_refused(verifier, token, "unknown_key")
    assert fetcher.calls == []


def test_jwks_cache_ttl_expiry_refetches(
    verifier: TokenVerifier,
    make_token: TokenFactory,
    jku_key: SigningKey,
    fetcher: FakeFetcher,
    clock: FakeClock,
) -> None:
    verifier.verify(make_token(jku_key, iss=JKU_ISSUER, headers={"jku": JKU}), audience=AUDIENCE)
    clock.advance(299)
    verifier.verify(make_token(jku_key, iss=JKU_ISSUER, headers={"jku": JKU}), audience=AUDIENCE)
    assert fetcher.calls == [JKU]

    clock.advance(2)
    verifier.verify(make_token(jku_key, iss=JKU_ISSUER, headers={"jku": JKU}), audience=AUDIENCE)
    assert fetcher.calls == [JKU, JKU]


def test_unknown_kid_refetches_the_jku_at_most_once_per_interval(
    verifier: TokenVerifier,
    make_token: TokenFactory,
    jku_key: SigningKey,
    fetcher: FakeFetcher,
    clock: FakeClock,
) -> None:
    verifier.verify(make_token(jku_key, iss=JKU_ISSUER, headers={"jku": JKU}), audience=AUDIENCE)
    rotated = SigningKey("jku-rsa-2", "RS384", jku_key.private)
    fetcher.documents[JKU] = jwks_of(jku_key, rotated)

    # Too soon after the last fetch: a made-up kid must not trigger a request.
    clock.advance(5)
    token = make_token(rotated, iss=JKU_ISSUER, headers={"jku": JKU})
    assert_refused(verifier, token, "unknown_key")
    assert fetcher.calls == [JKU]

    clock.advance(30)
    token = make_token(rotated, iss=JKU_ISSUER, headers={"jku": JKU})
    assert verifier.verify(token, audience=AUDIENCE).kid == "jku-rsa-2"
    assert fetcher.calls == [JKU, JKU]


def test_unavailable_jwks_is_a_token_error(
    verifier: TokenVerifier, make_token: TokenFactory, jku_key: SigningKey, fetcher: FakeFetcher
) -> None:
    del fetcher.documents[JKU]

    token = make_token(jku_key, iss=JKU_ISSUER, headers={"jku": JKU})
    assert_refused(verifier, token, "jwks_unavailable")


def test_jwks_cache_serves_from_cache_until_ttl(clock: FakeClock) -> None:
    fetcher = FakeFetcher(documents={JKU: {"keys": []}})
    cache = JwksCache(fetcher, ttl_seconds=10, clock=clock)

    assert cache.get(JKU) == {"keys": []}
    clock.advance(9.9)
    cache.get(JKU)
    assert len(fetcher.calls) == 1
    clock.advance(0.1)
    cache.get(JKU)
    assert len(fetcher.calls) == 2


# ── configuration ───────────────────────────────────────────────────────────


def test_issuer_config_needs_keys_or_an_allowlist() -> None:
    with pytest.raises(ValueError, match="JWK Set or a jku allowlist"):
        IssuerConfig(ISSUER)
    with pytest.raises(ValueError, match="'keys'"):
        IssuerConfig(ISSUER, jwks={"kty": "RSA"})


def test_issuer_config_refuses_private_key_material(rsa_key: SigningKey) -> None:
    assert isinstance(rsa_key.private, rsa.RSAPrivateKey)
    private_jwk = RSAAlgorithm.to_jwk(rsa_key.private, as_dict=True)

    with pytest.raises(ValueError, match="private"):
        IssuerConfig(ISSUER, jwks={"keys": [private_jwk]})


def test_verifier_refuses_duplicate_issuers(rsa_key: SigningKey) -> None:
    config = IssuerConfig(ISSUER, jwks=jwks_of(rsa_key))

    with pytest.raises(ValueError, match="twice"):
        TokenVerifier([config, config], fetcher=FakeFetcher())


# ── the edge: headers and the 401 body ──────────────────────────────────────


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Bearer abc.def.ghi", "abc.def.ghi"),
        ("bearer   abc.def.ghi  ", "abc.def.ghi"),
        ("Basic dXNlcjpwYXNz", None),
        ("Bearer", None),
        ("", None),
        (None, None),
    ],
)
def test_bearer_token_extraction(header: str | None, expected: str | None) -> None:
    assert bearer_token(header) == expected


def test_operation_outcome_shape() -> None:
    outcome = operation_outcome(TokenError("expired", "the token has expired"))

    assert outcome == {
        "resourceType": "OperationOutcome",
        "issue": [
            {"severity": "error", "code": "security", "diagnostics": "the token has expired"}
        ],
    }


# ── HttpxJwksFetcher against a real local server ────────────────────────────


def test_httpx_fetcher_reads_a_served_jwks(local_server: LocalServer, jku_key: SigningKey) -> None:
    document = jwks_of(jku_key)
    local_server.routes["/jwks.json"] = lambda h: send_body(h, json.dumps(document).encode())

    assert HttpxJwksFetcher().fetch(local_server.url("/jwks.json")) == document


def test_verifier_end_to_end_over_http(
    local_server: LocalServer, jku_key: SigningKey, make_token: TokenFactory, clock: FakeClock
) -> None:
    body = json.dumps(jwks_of(jku_key)).encode()
    local_server.routes["/jwks.json"] = lambda h: send_body(h, body)
    url = local_server.url("/jwks.json")
    verifier = TokenVerifier(
        [IssuerConfig(JKU_ISSUER, jku_allowlist=(url,))],
        fetcher=HttpxJwksFetcher(timeout_seconds=2.0),
        clock=clock,
    )

    token = make_token(jku_key, iss=JKU_ISSUER, headers={"jku": url})
    assert verifier.verify(token, audience=AUDIENCE).kid == jku_key.kid


def test_httpx_fetcher_times_out_as_a_token_error(local_server: LocalServer) -> None:
    def slow(handler: BaseHTTPRequestHandler) -> None:
        local_server.stop.wait(5)
        send_body(handler, b'{"keys": []}')

    local_server.routes["/slow"] = slow
    started = time.monotonic()

    with pytest.raises(TokenError) as caught:
        HttpxJwksFetcher(timeout_seconds=0.2).fetch(local_server.url("/slow"))

    assert caught.value.reason == "jwks_unavailable"
    assert time.monotonic() - started < 2


def test_httpx_fetcher_stops_a_slow_trickle_at_the_deadline(local_server: LocalServer) -> None:
    def trickle(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "1000")
        handler.end_headers()
        for _ in range(1000):
            if local_server.stop.wait(0.05):
                return
            handler.wfile.write(b" ")
            handler.wfile.flush()

    local_server.routes["/trickle"] = trickle
    started = time.monotonic()

    with pytest.raises(TokenError) as caught:
        HttpxJwksFetcher(timeout_seconds=0.3).fetch(local_server.url("/trickle"))

    assert caught.value.reason == "jwks_unavailable"
    assert time.monotonic() - started < 2


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/missing", b"", 404),
        ("/error", b'{"keys": []}', 500),
        ("/garbage", b"<html>not json</html>", 200),
        ("/not-a-jwks", b'{"kty": "RSA"}', 200),
        ("/list", b"[1, 2]", 200),
        ("/huge", b'{"keys": [], "pad": "' + b"x" * 300_000 + b'"}', 200),
    ],
)
def test_httpx_fetcher_bad_responses_are_token_errors(
    local_server: LocalServer, path: str, body: bytes, status: int
) -> None:
    if status != 404:
        local_server.routes[path] = lambda h: send_body(h, body, status)

    with pytest.raises(TokenError) as caught:
        HttpxJwksFetcher().fetch(local_server.url(path))

    assert caught.value.reason == "jwks_unavailable"


def test_httpx_fetcher_unreachable_server_is_a_token_error() -> None:
    # Port 9 (discard) is closed on test machines, so the connection is refused at once.
    with pytest.raises(TokenError) as caught:
        HttpxJwksFetcher(timeout_seconds=0.5).fetch("http://127.0.0.1:9/jwks.json")

    assert caught.value.reason == "jwks_unavailable"


@pytest.mark.parametrize("signature", ["!!!!", "a", "ab=c", "abc==="])
def test_signature_that_is_not_base64url_is_malformed_before_anything_else(
    verifier: TokenVerifier, make_token: TokenFactory, rsa_key: SigningKey, signature: str
) -> None:
    # Refused as malformed before the issuer or key is looked at, even from an unknown issuer.
    header, payload, _ = make_token(rsa_key, iss="https://evil.example.com").split(".")

    assert_refused(verifier, f"{header}.{payload}.{signature}", "malformed")


@pytest.mark.parametrize("kid", [7, ["rsa-1"], {"k": 1}])
def test_non_string_kid_is_malformed(
    verifier: TokenVerifier, make_token: TokenFactory, rsa_key: SigningKey, kid: object
) -> None:
    header, payload, signature = make_token(rsa_key).split(".")
    edited = {**json.loads(base64.urlsafe_b64decode(header + "==")), "kid": kid}

    assert_refused(verifier, f"{b64json(edited)}.{payload}.{signature}", "malformed")
