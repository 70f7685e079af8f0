"""The addon's hooks driven through mitmproxy's own test helpers (taddons, tflow), one behaviour per test."""

from __future__ import annotations

import asyncio
import datetime
import inspect
import io
import json

import pytest
import yaml
from mitmproxy import exceptions, http
from mitmproxy.test import taddons, tflow

from sigwarden import layers
from sigwarden.addon import RECORD, Sigwarden
from sigwarden.config import parse_config
from sigwarden.logs import configure_logging
from sigwarden.outcomes import Outcome
from sigwarden.schemes.sendcloud import signature

SECRET = "addon-test-secret-0123456789"
OLD_SECRET = "addon-test-old-secret-0123"
BODY = b'{"action": "parcel_status_changed", "timestamp": 1764320000000}'
VERDICT_NAMES = ("X-Webhook-Verified", "X-Webhook-Key-Id", "X-Webhook-Verify-Error")


def config_data(**overrides):
    data = {
        "upstream": "http://127.0.0.1:8000",
        "secrets": {"sendcloud": {"value": SECRET}, "sendcloud-old": {"value": OLD_SECRET}},
        "routes": [
            {
                "name": "sendcloud",
                "path": ["/webhooks/sendcloud", "/index.php/webhooks/sendcloud"],
                "secrets": ["sendcloud", "sendcloud-old"],
                "max_body": "1KiB",
            },
            {"name": "query", "path": "/index.php", "query": {"route": "sendcloud/webhook"}, "secrets": ["sendcloud"]},
        ],
    }
    data.update(overrides)
    return data


def make_addon(**overrides) -> Sigwarden:
    addon = Sigwarden()
    addon.install(parse_config(config_data(**overrides)))
    return addon


def make_flow(path="/webhooks/sendcloud", body=BODY, headers=None, method="POST", url_host="shop.example"):
    if isinstance(headers, list):
        headers = http.Headers([(name.encode(), value.encode()) for name, value in headers])
    request = http.Request.make(method, f"http://{url_host}{path}", body, headers or {})
    return tflow.tflow(req=request)


def signed(body=BODY, secret=SECRET, **extra):
    return {"Content-Type": "application/json", "Sendcloud-Signature": signature(body, secret.encode()), **extra}


def run_hook(hook, flow):
    """Call a hook; the ones that may wait (dedupe) are coroutines, run to completion here."""
    result = hook(flow)
    if inspect.isawaitable(result):
        asyncio.run(result)


def through_request(addon, flow):
    addon.requestheaders(flow)
    run_hook(addon.request, flow)
    return flow


def error_of(flow) -> str:
    assert flow.response is not None
    assert flow.response.headers["content-type"] == "application/json"
    document = json.loads(flow.response.content)
    assert set(document) == {"error", "message"}
    return document["error"]


FORGED_SPELLINGS = [
    "X-Webhook-Verified",
    "x-webhook-verified",
    "X-WEBHOOK-VERIFIED",
    "X_Webhook_Verified",
    "x_webhook-verified",
    "X-Webhook-Key-Id",
    "X_WEBHOOK_KEY_ID",
    "X-Webhook-Verify-Error",
    "x_webhook_verify_error",
]


# --- configuration -------------------------------------------------------------------


def test_the_option_loads_the_config_file(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config_data()))
    addon = Sigwarden()
    with taddons.context(addon) as context:
        context.configure(addon, sigwarden_config=str(path))
        assert addon.runtime is not None
        assert [route.name for route in addon.runtime.config.routes] == ["sendcloud", "query"]


def test_an_invalid_config_file_is_an_options_error_naming_file_and_key(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config_data(mode="strict")))
    addon = Sigwarden()
    with taddons.context(addon) as context:
        with pytest.raises(exceptions.OptionsError) as raised:
            context.configure(addon, sigwarden_config=str(path))
    assert str(raised.value) == f"{path}: mode: expected one of enforce, report, got 'strict'"


# --- forged verdict headers ------------------------------------------------------------


@pytest.mark.parametrize("name", FORGED_SPELLINGS)
@pytest.mark.parametrize("path", ["/webhooks/sendcloud", "/", "/shop/cart", "/index.php?route=product"])
def test_forged_verdict_headers_are_stripped_on_every_path(name, path):
    addon = make_addon()
    flow = make_flow(path, headers={**signed(), name: "true"})
    addon.requestheaders(flow)
    assert name not in flow.request.headers
    assert [key for key in flow.request.headers if key.lower().replace("_", "-") in map(str.lower, VERDICT_NAMES)] == []


def test_forged_headers_of_custom_names_are_stripped():
    addon = make_addon(headers={"verified": "X-Shop-Trusted", "key_id": "X-Shop-Key", "error": "X-Shop-Why"})
    flow = make_flow("/shop", headers={"x_shop_trusted": "1", "X-SHOP-KEY": "k", "X-Shop-Why": "x", "X-Keep": "1"})
    addon.requestheaders(flow)
    assert list(flow.request.headers.keys()) == ["X-Keep", "content-length"]


def test_every_copy_of_a_forged_header_is_stripped():
    addon = make_addon()
    flow = make_flow("/shop", headers=[("X-Webhook-Verified", "true"), ("x_webhook_verified", "true")])
    addon.requestheaders(flow)
    assert "X-Webhook-Verified" not in flow.request.headers
    assert "x_webhook_verified" not in flow.request.headers


def test_forged_headers_are_stripped_even_when_the_first_hook_is_request():
    addon = make_addon()
    flow = make_flow(headers=signed(**{"X-Webhook-Key-Id": "attacker"}))
    run_hook(addon.request, flow)
    assert flow.request.headers.get_all("X-Webhook-Key-Id") == ["sendcloud"]


# --- verified requests --------------------------------------------------------------------


def test_a_verified_request_gets_the_verdict_headers_and_is_otherwise_untouched():
    addon = make_addon()
    headers = signed(**{"X-Webhook-Verified": "forged", "X-Other": "kept"})
    flow = through_request(addon, make_flow(headers=headers))
    assert flow.response is None
    assert flow.request.headers["X-Webhook-Verified"] == "true"
    assert flow.request.headers["X-Webhook-Key-Id"] == "sendcloud"
    assert "X-Webhook-Verify-Error" not in flow.request.headers
    assert flow.request.headers["Sendcloud-Signature"] == signature(BODY, SECRET.encode())
    assert flow.request.headers["X-Other"] == "kept"
    assert flow.request.headers["Content-Type"] == "application/json"
    assert flow.request.raw_content == BODY
    assert len(flow.request.headers["X-Request-Id"]) == 32


def test_the_old_secret_verifies_and_names_itself():
    addon = make_addon()
    flow = through_request(addon, make_flow(headers=signed(secret=OLD_SECRET)))
    assert flow.response is None
    assert flow.request.headers["X-Webhook-Key-Id"] == "sendcloud-old"


def test_the_clients_request_id_is_kept():
    addon = make_addon()
    flow = through_request(addon, make_flow(headers=signed(**{"X-Request-Id": "req-42"})))
    assert flow.request.headers.get_all("X-Request-Id") == ["req-42"]


def test_a_protected_body_is_never_streamed():
    addon = make_addon()
    flow = make_flow(headers=signed())
    flow.request.stream = True  # as stream_large_bodies would have set it
    addon.requestheaders(flow)
    assert flow.request.stream is False


def test_an_alias_and_a_query_route_are_protected():
    addon = make_addon()
    for path in (
        "/index.php/webhooks/sendcloud",
        "/INDEX.PHP/webhooks//sendcloud/",
        "/index.php?route=sendcloud/webhook",
    ):
        flow = make_flow(path, headers={})
        through_request(addon, flow)
        assert error_of(flow) == "missing_signature", path


def test_an_absolute_form_target_is_matched_on_its_path_and_sent_in_origin_form():
    addon = make_addon()
    flow = make_flow(headers=signed())
    flow.request.authority = "evil.example"
    through_request(addon, flow)
    assert flow.request.authority == ""
    assert flow.request.headers["X-Webhook-Verified"] == "true"


def test_the_response_of_a_forwarded_request_is_streamed():
    addon = make_addon()
    flow = through_request(addon, make_flow(headers=signed()))
    flow.response = tflow.tresp()
    addon.responseheaders(flow)
    assert flow.response.stream is True


def test_the_whole_cycle_of_a_verified_request_through_taddons():
    addon = make_addon()
    flow = make_flow(headers=signed())
    with taddons.context(addon) as context:
        context.master.event_loop.run_until_complete(context.cycle(addon, flow))
    assert flow.response is None
    assert flow.request.headers["X-Webhook-Verified"] == "true"
    assert flow.metadata[RECORD].finished is False  # no response yet: nothing to log


def test_the_whole_cycle_of_a_refused_request_through_taddons():
    addon = make_addon()
    flow = make_flow(headers={})
    with taddons.context(addon) as context:
        context.master.event_loop.run_until_complete(context.cycle(addon, flow))
    assert error_of(flow) == "missing_signature"
    assert flow.response.stream is False
    assert flow.metadata[RECORD].finished is True


# --- refusals -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "missing_signature"),
        ({"Sendcloud-Signature": ""}, "malformed_signature"),
        ({"Sendcloud-Signature": "abc"}, "malformed_signature"),
        ([("Sendcloud-Signature", signature(BODY, SECRET.encode()))] * 2, "malformed_signature"),
        ({"Sendcloud-Signature": signature(BODY, b"not-the-secret")}, "invalid_signature"),
        (
            {"Sendcloud-Signature": signature(b'{"action":"parcel_status_changed"}', SECRET.encode())},
            "invalid_signature",
        ),
    ],
)
def test_a_refusal_is_a_json_answer_and_nothing_goes_upstream(headers, code):
    addon = make_addon()
    flow = through_request(addon, make_flow(headers=headers))
    assert flow.response.status_code == 401
    assert error_of(flow) == code
    assert flow.metadata[layers.OUTCOME] is Outcome(code)
    assert flow.metadata[RECORD].upstream_started is None
    assert "X-Webhook-Verified" not in flow.request.headers


def test_a_refusal_reveals_neither_secret_nor_expected_signature():
    addon = make_addon()
    flow = through_request(addon, make_flow(headers={"Sendcloud-Signature": "0" * 64}))
    answer = bytes(flow.response.content) + repr(flow.response.headers).encode()
    for secret_or_signature in (SECRET, OLD_SECRET, "sendcloud-old", signature(BODY, SECRET.encode())):
        assert secret_or_signature.encode() not in answer
    assert b"mitmproxy" not in answer.lower()


def test_the_refusal_of_a_head_request_has_the_length_but_not_the_body():
    addon = make_addon()
    flow = through_request(addon, make_flow(method="HEAD", body=b"", headers={}))
    assert flow.response.status_code == 401
    assert flow.response.raw_content == b""
    assert int(flow.response.headers["content-length"]) == len(Outcome.MISSING_SIGNATURE.error_body())


def test_our_own_answer_is_not_streamed():
    addon = make_addon()
    flow = through_request(addon, make_flow(headers={}))
    addon.responseheaders(flow)
    assert flow.response.stream is False


def test_a_route_without_a_readable_secret_fails_closed_with_503(tmp_path):
    missing = tmp_path / "absent"
    data = config_data(secrets={"sendcloud": {"file": str(missing)}, "sendcloud-old": {"value": OLD_SECRET}})
    data["routes"][1]["secrets"] = ["sendcloud-old"]
    data["routes"][0]["secrets"] = ["sendcloud"]
    addon = Sigwarden()
    addon.install(parse_config(data))
    flow = through_request(addon, make_flow(headers=signed()))
    assert flow.response.status_code == 503
    assert error_of(flow) == "secret_unavailable"
    other = through_request(addon, make_flow("/index.php?route=sendcloud/webhook", headers=signed(secret=OLD_SECRET)))
    assert other.response is None


def test_an_expired_secret_is_refused():
    past = (datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=1)).isoformat()
    addon = make_addon(
        secrets={"sendcloud": {"value": SECRET, "expires": past}, "sendcloud-old": {"value": OLD_SECRET}}
    )
    flow = through_request(addon, make_flow(headers=signed()))
    assert error_of(flow) == "invalid_signature"  # the route's other secret is still usable
    flow = through_request(addon, make_flow(headers=signed(secret=OLD_SECRET)))
    assert flow.response is None


def test_every_secret_expired_is_secret_unavailable():
    past = (datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=1)).isoformat()
    addon = make_addon(
        secrets={
            "sendcloud": {"value": SECRET, "expires": past},
            "sendcloud-old": {"value": OLD_SECRET, "expires": past},
        }
    )
    flow = through_request(addon, make_flow(headers=signed()))
    assert flow.response.status_code == 503
    assert error_of(flow) == "secret_unavailable"


# --- body limits as the layers ask ------------------------------------------------------------


def test_the_body_limit_is_the_routes():
    addon = make_addon()
    assert addon.body_limit_outcome(make_flow(headers={}), 1024) is None
    assert addon.body_limit_outcome(make_flow(headers={}), 1025) is Outcome.BODY_TOO_LARGE


def test_the_body_limit_holds_in_report_mode():
    addon = make_addon(mode="report")
    assert addon.body_limit_outcome(make_flow(headers={}), 1025) is Outcome.BODY_TOO_LARGE


def test_unmatched_requests_have_no_body_limit():
    addon = make_addon()
    assert addon.body_limit_outcome(make_flow("/upload", headers={}), 10**12) is None


def test_unmatched_requests_with_reject_are_refused_before_the_body():
    addon = make_addon(unmatched="reject")
    assert addon.body_limit_outcome(make_flow("/upload", headers={}), 10) is Outcome.NO_ROUTE


# --- unmatched requests -----------------------------------------------------------------------


def test_an_unmatched_request_is_streamed_and_untouched():
    addon = make_addon()
    flow = make_flow("/upload", body=b"x" * 100, headers={"Content-Type": "text/plain"})
    through_request(addon, flow)
    assert flow.response is None
    assert flow.request.stream is True
    assert "X-Webhook-Verified" not in flow.request.headers
    assert "X-Request-Id" not in flow.request.headers


def test_the_response_of_an_unmatched_request_is_streamed():
    addon = make_addon()
    flow = through_request(addon, make_flow("/download", headers={}))
    flow.response = tflow.tresp()
    addon.responseheaders(flow)
    assert flow.response.stream is True


def test_unmatched_reject_answers_404_no_route():
    addon = make_addon(unmatched="reject")
    flow = make_flow("/shop", headers={})
    addon.requestheaders(flow)
    assert flow.response.status_code == 404
    assert error_of(flow) == "no_route"


def test_a_protected_path_is_still_verified_with_unmatched_reject():
    addon = make_addon(unmatched="reject")
    flow = through_request(addon, make_flow(headers=signed()))
    assert flow.response is None
    assert flow.request.headers["X-Webhook-Verified"] == "true"


# --- report mode -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "missing_signature"),
        ({"Sendcloud-Signature": "abc"}, "malformed_signature"),
        ({"Sendcloud-Signature": "0" * 64}, "invalid_signature"),
    ],
)
def test_report_mode_forwards_with_the_verdict_and_no_key_id(headers, code):
    addon = make_addon(mode="report")
    flow = through_request(addon, make_flow(headers={**headers, "X-Webhook-Key-Id": "forged"}))
    assert flow.response is None
    assert flow.request.headers["X-Webhook-Verified"] == "false"
    assert flow.request.headers["X-Webhook-Verify-Error"] == code
    assert "X-Webhook-Key-Id" not in flow.request.headers


def test_report_mode_still_marks_verified_requests_true():
    addon = make_addon(mode="report")
    flow = through_request(addon, make_flow(headers=signed()))
    assert flow.request.headers["X-Webhook-Verified"] == "true"
    assert flow.request.headers["X-Webhook-Key-Id"] == "sendcloud"
    assert "X-Webhook-Verify-Error" not in flow.request.headers


def test_a_routes_mode_overrides_the_global_one():
    data = config_data(mode="report")
    data["routes"][0]["mode"] = "enforce"
    addon = Sigwarden()
    addon.install(parse_config(data))
    flow = through_request(addon, make_flow(headers={}))
    assert error_of(flow) == "missing_signature"
    flow = through_request(addon, make_flow("/index.php?route=sendcloud/webhook", headers={}))
    assert flow.response is None
    assert flow.request.headers["X-Webhook-Verify-Error"] == "missing_signature"


def test_a_route_in_report_mode_under_a_global_enforce_mode():
    data = config_data()
    data["routes"][1]["mode"] = "report"
    addon = Sigwarden()
    addon.install(parse_config(data))
    flow = through_request(addon, make_flow("/index.php?route=sendcloud/webhook", headers={}))
    assert flow.response is None
    assert flow.request.headers["X-Webhook-Verified"] == "false"
    assert error_of(through_request(addon, make_flow(headers={}))) == "missing_signature"


def test_report_mode_forwards_a_route_without_a_usable_secret(tmp_path):
    data = config_data(
        mode="report", secrets={"sendcloud": {"file": str(tmp_path / "absent")}, "sendcloud-old": {"value": OLD_SECRET}}
    )
    data["routes"][0]["secrets"] = ["sendcloud"]
    addon = Sigwarden()
    addon.install(parse_config(data))
    flow = through_request(addon, make_flow(headers=signed()))
    assert flow.response is None
    assert flow.request.headers["X-Webhook-Verify-Error"] == "secret_unavailable"


# --- a new config ----------------------------------------------------------------------------


def test_a_flow_keeps_the_config_it_started_with():
    addon = make_addon()
    flow = make_flow(headers={})
    addon.requestheaders(flow)
    addon.install(parse_config(config_data(mode="report")))
    run_hook(addon.request, flow)
    assert error_of(flow) == "missing_signature"


def test_a_protected_body_streamed_by_another_addon_fails_closed():
    addon = make_addon()
    flow = make_flow(headers=signed())
    addon.requestheaders(flow)
    flow.request.stream = True  # another addon insisted after us: the body is never buffered
    flow.request.data.content = None
    run_hook(addon.request, flow)
    assert error_of(flow) == "bad_request"
    assert "X-Webhook-Verified" not in flow.request.headers


def test_a_bug_while_verifying_fails_closed_with_a_json_500(monkeypatch):
    addon = make_addon()
    flow = make_flow(headers=signed())
    log = io.StringIO()
    configure_logging("json", "info", stream=log)

    def broken(*args, **kwargs):
        raise RuntimeError("a bug that mentions " + SECRET)

    monkeypatch.setattr("sigwarden.decision.verify", broken)
    addon.requestheaders(flow)
    run_hook(addon.request, flow)
    assert error_of(flow) == "internal_error"
    assert flow.response.status_code == 500
    assert "X-Webhook-Verified" not in flow.request.headers
    [line] = [json.loads(text) for text in log.getvalue().splitlines() if '"internal_error"' in text]
    assert line["exception"] == "RuntimeError" and line["where"]
    assert SECRET not in log.getvalue()  # the log says where, never the exception's text


def test_a_bug_while_claiming_a_delivery_fails_closed_too(monkeypatch):
    addon = make_addon(routes=[{"name": "sendcloud", "path": "/webhooks/sendcloud", "secrets": ["sendcloud"],
                                "dedupe_window": "1h"}])  # fmt: skip

    async def broken(*args, **kwargs):
        raise RuntimeError("store exploded")

    monkeypatch.setattr(addon.dedupe, "claim", broken)
    flow = make_flow(headers=signed())
    addon.requestheaders(flow)
    run_hook(addon.request, flow)
    assert error_of(flow) == "internal_error"
    assert "X-Webhook-Verified" not in flow.request.headers
