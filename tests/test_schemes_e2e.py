"""Every scheme through the real `sigwarden run` in front of a real upstream: what the upstream received."""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterator

import pytest

from harness import SECRET, Sigwarden, Upstream, base_config
from sigwarden import cli
from sigwarden.schemes import SCHEMES

pytestmark = pytest.mark.e2e

SECRETS = {
    "tok-new": "tok-new-0123456789abcdef",
    "tok-old": "tok-old-0123456789abcdef",
    "basic": "shop:basic-password-0123",
    "apikey": "apikey-0123456789abcdef",
    "hmac": "hmac-secret-0123456789",
    "github": "It's a Secret to Everybody",
    "stripe": "whsec_test_secret",
    "shopify": "test_secret_key",
    "standard-webhooks": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "expired": "expired-0123456789abcdef",
}
HMAC_OPTIONS = {
    "header": "X-Signature",
    "encoding": "base64",
    "prefix": "v1=",
    "timestamp_header": "X-Timestamp",
    "signed_content": "{timestamp}.{body}",
}
ROUTES = [
    {"name": "sendcloud", "path": "/webhooks/sendcloud", "secrets": ["sendcloud"]},
    {"name": "token", "path": "/hooks/token", "scheme": "token", "secrets": ["tok-new", "tok-old"],
     "remove_credential": True},
    {"name": "token-basic", "path": "/hooks/token-basic", "scheme": "token", "auth": "basic", "secrets": ["basic"]},
    {"name": "token-apikey", "path": "/hooks/token-apikey", "scheme": "token", "auth": "api_key",
     "header": "X-Api-Key", "remove_credential": True, "secrets": ["apikey"]},
    {"name": "token-report", "path": "/hooks/token-report", "scheme": "token", "remove_credential": True,
     "mode": "report", "secrets": ["tok-new"]},
    {"name": "token-expired", "path": "/hooks/token-expired", "scheme": "token", "secrets": ["expired"]},
    {"name": "hmac", "path": "/hooks/hmac", "scheme": "hmac", "secrets": ["hmac"], **HMAC_OPTIONS},
    {"name": "github", "path": "/hooks/github", "scheme": "github", "secrets": ["github"]},
    {"name": "stripe", "path": "/hooks/stripe", "scheme": "stripe", "secrets": ["stripe"]},
    {"name": "shopify", "path": "/hooks/shopify", "scheme": "shopify", "secrets": ["shopify"]},
    {"name": "standard-webhooks", "path": "/hooks/standard-webhooks", "scheme": "standard-webhooks",
     "secrets": ["standard-webhooks"]},
]  # fmt: skip
BODY = json.dumps({"id": "evt_1", "type": "order.paid", "data": {"total": "12.50", "name": "Zoë"}}).encode()


def env_name(secret: str) -> str:
    return "E2E_SCHEME_" + secret.upper().replace("-", "_")


@pytest.fixture(scope="module")
def scheme_upstream() -> Iterator[Upstream]:
    server = Upstream().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def scheme_sigwarden(tmp_path_factory, scheme_upstream: Upstream) -> Iterator[Sigwarden]:
    secrets: dict[str, dict] = {"sendcloud": {"env": "E2E_SECRET"}}
    secrets.update({name: {"env": env_name(name)} for name in SECRETS})
    secrets["expired"]["expires"] = "2000-01-01T00:00:00Z"
    config = base_config(scheme_upstream.url, secrets=secrets, routes=ROUTES)
    env = {env_name(name): value for name, value in SECRETS.items()}
    process = Sigwarden(tmp_path_factory.mktemp("schemes"), config, env).start()
    yield process
    process.stop()


@pytest.fixture
def proxy(scheme_sigwarden: Sigwarden, scheme_upstream: Upstream) -> tuple[Sigwarden, Upstream]:
    scheme_upstream.received.clear()
    return scheme_sigwarden, scheme_upstream


def route(name: str) -> dict:
    return next(route for route in ROUTES if route["name"] == name)


def signature_headers(name: str, secret: str, body: bytes = BODY) -> dict[str, str]:
    """What a genuine sender (or, with a wrong secret, a forger) adds to the body for this route."""
    scheme = SCHEMES[route(name).get("scheme", "sendcloud")]
    given = {key: value for key, value in route(name).items() if key in scheme.option_keys}
    return scheme.sign(body, secret.encode(), scheme.parse_options(given))


# One genuine and one forged request per scheme: (route, secret name, key id expected upstream).
CASES = [
    ("sendcloud", "sendcloud", "sendcloud"),
    ("token", "tok-new", "tok-new"),
    ("token-basic", "basic", "basic"),
    ("token-apikey", "apikey", "apikey"),
    ("hmac", "hmac", "hmac"),
    ("github", "github", "github"),
    ("stripe", "stripe", "stripe"),
    ("shopify", "shopify", "shopify"),
    ("standard-webhooks", "standard-webhooks", "standard-webhooks"),
]


def secret_value(name: str) -> str:
    return SECRET if name == "sendcloud" else SECRETS[name]


@pytest.mark.parametrize(("name", "secret", "key_id"), CASES, ids=[case[0] for case in CASES])
def test_genuine_request_reaches_the_upstream_verified(proxy, name, secret, key_id):
    sigwarden, upstream = proxy
    headers = {"Content-Type": "application/json", **signature_headers(name, secret_value(secret))}
    status, _, answer = sigwarden.request("POST", route(name)["path"], BODY, headers)
    assert status == 200, answer
    [received] = upstream.received
    assert received.path == route(name)["path"]
    assert received.body == BODY
    assert received.header("X-Webhook-Verified") == "true"
    assert received.header("X-Webhook-Key-Id") == key_id


@pytest.mark.parametrize(("name", "secret", "key_id"), CASES, ids=[case[0] for case in CASES])
def test_forged_request_is_refused_and_never_reaches_the_upstream(proxy, name, secret, key_id):
    sigwarden, upstream = proxy
    forged = secret_value(secret)[:-4] + "XXXX"
    headers = {"Content-Type": "application/json", **signature_headers(name, forged)}
    status, answer_headers, answer = sigwarden.request("POST", route(name)["path"], BODY, headers)
    assert status == 401
    assert answer_headers["content-type"] == "application/json"
    assert json.loads(answer)["error"] == "invalid_signature"
    if route(name).get("scheme") != "token":  # a token signs nothing; the others sign the body
        other = signature_headers(name, secret_value(secret), body=BODY + b" ")
        headers = {"Content-Type": "application/json", **other}
        assert sigwarden.request("POST", route(name)["path"], BODY, headers)[0] == 401
    assert upstream.received == []


def test_bearer_token_is_removed_before_forwarding_and_rotation_works(proxy):
    sigwarden, upstream = proxy
    status, _, _ = sigwarden.request("POST", "/hooks/token", BODY, {"Authorization": f"Bearer {SECRETS['tok-old']}"})
    assert status == 200
    [received] = upstream.received
    assert received.header("X-Webhook-Key-Id") == "tok-old"
    assert "authorization" not in [name.lower() for name in received.header_names()]


def test_api_key_and_its_look_alikes_are_removed_before_forwarding(proxy):
    sigwarden, upstream = proxy
    headers = [("X-Api-Key", SECRETS["apikey"]), ("x_api_key", SECRETS["apikey"]), ("X-Other", "kept")]
    status, _, _ = sigwarden.request("POST", "/hooks/token-apikey", BODY, headers)
    assert status == 200
    [received] = upstream.received
    assert received.header("X-Webhook-Verified") == "true"
    assert received.header("X-Other") == "kept"
    names = [name.lower().replace("_", "-") for name in received.header_names()]
    assert "x-api-key" not in names
    assert SECRETS["apikey"] not in json.dumps(received.headers)


def test_basic_credentials_stay_when_removal_is_not_asked(proxy):
    sigwarden, upstream = proxy
    headers = signature_headers("token-basic", SECRETS["basic"])
    assert sigwarden.request("POST", "/hooks/token-basic", BODY, headers)[0] == 200
    assert upstream.received[0].header("Authorization") == headers["Authorization"]


def test_report_mode_forwards_a_wrong_token_marked_and_without_it(proxy):
    sigwarden, upstream = proxy
    status, _, _ = sigwarden.request("POST", "/hooks/token-report", BODY, {"Authorization": "Bearer guessed"})
    assert status == 200
    [received] = upstream.received
    assert received.header("X-Webhook-Verified") == "false"
    assert received.header("X-Webhook-Verify-Error") == "invalid_signature"
    assert received.header("X-Webhook-Key-Id") is None
    assert received.header("Authorization") is None


def test_expired_secret_fails_closed(proxy):
    sigwarden, upstream = proxy
    headers = {"Authorization": f"Bearer {SECRETS['expired']}"}
    status, _, answer = sigwarden.request("POST", "/hooks/token-expired", BODY, headers)
    assert (status, json.loads(answer)["error"]) == (503, "secret_unavailable")
    assert upstream.received == []


def test_missing_credential_and_stale_timestamp(proxy):
    sigwarden, upstream = proxy
    status, _, answer = sigwarden.request("POST", "/hooks/token", BODY, {"Content-Type": "application/json"})
    assert (status, json.loads(answer)["error"]) == (401, "missing_signature")
    scheme = SCHEMES["stripe"]
    then = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=1000)
    stale = scheme.sign(BODY, SECRETS["stripe"].encode(), scheme.parse_options({}), then)
    status, _, answer = sigwarden.request("POST", "/hooks/stripe", BODY, stale)
    assert (status, json.loads(answer)["error"]) == (400, "stale_timestamp")
    status, _, answer = sigwarden.request("POST", "/hooks/hmac", BODY, {"X-Signature": "v1=" + "A" * 43 + "="})
    assert (status, json.loads(answer)["error"]) == (400, "missing_timestamp")
    assert upstream.received == []


def test_logs_carry_the_route_and_outcome_and_never_a_credential(proxy):
    sigwarden, _ = proxy
    sigwarden.request("POST", "/hooks/token", BODY, {"Authorization": f"Bearer {SECRETS['tok-new']}"})
    sigwarden.request("POST", "/hooks/token", BODY, {"Authorization": "Bearer guessed-token-value"})
    sigwarden.request("POST", "/hooks/github", BODY, signature_headers("github", SECRETS["github"]))
    lines = [line for line in sigwarden.log_lines() if line.get("event") == "request"]
    seen = {(line["route"], line["outcome"]) for line in lines}
    assert {("token", "verified"), ("token", "invalid_signature"), ("github", "verified")} <= seen
    logs = sigwarden.logs()
    github_signature = signature_headers("github", SECRETS["github"])["X-Hub-Signature-256"]
    for value in [*SECRETS.values(), "guessed-token-value", github_signature, github_signature.split("=")[1]]:
        assert value not in logs


@pytest.mark.parametrize(("name", "secret", "key_id"), CASES, ids=[case[0] for case in CASES])
def test_sigwarden_send_works_for_every_scheme(proxy, monkeypatch, capsys, name, secret, key_id):
    sigwarden, upstream = proxy
    scheme = route(name).get("scheme", "sendcloud")
    monkeypatch.setenv("E2E_SEND_SECRET", secret_value(secret))
    url = f"http://127.0.0.1:{sigwarden.port}{route(name)['path']}"
    arguments = ["send", url, "--secret-env", "E2E_SEND_SECRET", "--scheme", scheme]
    for key, value in route(name).items():
        if key in SCHEMES[scheme].option_keys and not isinstance(value, bool):
            arguments += ["--option", f"{key}={value}"]
    assert cli.main(arguments) == 0, capsys.readouterr().out
    [received] = upstream.received
    assert received.header("X-Webhook-Verified") == "true"
    assert received.header("X-Webhook-Key-Id") == key_id
    assert json.loads(received.body)["action"] == "parcel_status_changed"
