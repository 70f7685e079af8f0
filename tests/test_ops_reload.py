"""Hot reload in the real process: Kubernetes-style Secret and ConfigMap swaps, edits, SIGHUP."""

from __future__ import annotations

import signal

import pytest
import yaml

from harness import sign, signed_headers, wait_until
from ops_support import MountedVolume, elapsed_until, metric_value, readiness, request_lines, wait_for_log

pytestmark = pytest.mark.e2e

BODY = b'{"action": "integration_updated", "timestamp": 1764320000000}'
FIRST = "first-key-0123456789abcdef"
SECOND = "second-key-0123456789abcdef"


def _file_secret_config(volume: MountedVolume) -> dict:
    return {
        "secrets": {"sendcloud": {"file": volume.path("key")}},
        "routes": [{"name": "sendcloud", "path": "/webhooks/sendcloud", "secrets": ["sendcloud"]}],
    }


def _status(process, secret: str) -> int:
    return process.request("POST", "/webhooks/sendcloud", BODY, signed_headers(BODY, secret))[0]


def test_secret_rotation_by_kubelet_swap_takes_effect_within_two_seconds(start_sigwarden, tmp_path):
    volume = MountedVolume(tmp_path / "secret", {"key": FIRST + "\n"})
    process = start_sigwarden(**_file_secret_config(volume))
    assert _status(process, FIRST) == 200
    volume.update({"key": SECOND + "\n"})
    took = elapsed_until(lambda: _status(process, SECOND) == 200, deadline=10)
    assert took < 2.0, f"rotation took {took:.2f}s"
    assert _status(process, FIRST) == 401
    wait_for_log(process, "secret_loaded", secret="sendcloud")


def test_secret_that_disappears_fails_closed_and_shows_as_degraded(start_sigwarden, tmp_path, upstream):
    volume = MountedVolume(tmp_path / "secret", {"key": FIRST})
    process = start_sigwarden(**_file_secret_config(volume))
    volume.remove()
    wait_until(lambda: _status(process, FIRST) == 503, deadline=5)
    status, body = readiness(process.admin_port)
    assert (status, body["degraded_routes"]) == (200, ["sendcloud"])
    assert metric_value(process.admin_port, "sigwarden_route_ready", route="sendcloud") == 0
    wait_for_log(process, "route_degraded", route="sendcloud")
    received = len(upstream.received)
    volume.update({"key": FIRST})
    wait_until(lambda: _status(process, FIRST) == 200, deadline=5)
    assert len(upstream.received) == received + 1
    assert readiness(process.admin_port)[1]["degraded_routes"] == []


def test_secret_missing_at_start_does_not_stop_the_start(start_sigwarden, tmp_path):
    process = start_sigwarden(
        secrets={"sendcloud": {"file": str(tmp_path / "not-yet" / "key")}},
        routes=[{"name": "sendcloud", "path": "/webhooks/sendcloud", "secrets": ["sendcloud"]}],
    )
    assert _status(process, FIRST) == 503
    (tmp_path / "not-yet").mkdir()
    (tmp_path / "not-yet" / "key").write_text(FIRST)
    wait_until(lambda: _status(process, FIRST) == 200, deadline=5)


def _rewrite(process, **changes) -> None:
    config = dict(process.config, **changes)
    temporary = process.config_path.with_suffix(".new")
    temporary.write_text(yaml.safe_dump(config))
    temporary.rename(process.config_path)  # a new inode, like a ConfigMap swap


def test_config_change_is_applied_without_restart(sigwarden, upstream):
    assert sigwarden.request("POST", "/hooks/new", BODY)[0] == 200  # unprotected so far
    routes = sigwarden.config["routes"] + [{"name": "new", "path": "/hooks/new", "secrets": ["sendcloud"]}]
    _rewrite(sigwarden, routes=routes)
    wait_until(lambda: sigwarden.request("POST", "/hooks/new", BODY)[0] == 401, deadline=5)
    assert sigwarden.request("POST", "/hooks/new", BODY, signed_headers(BODY))[0] == 200
    assert metric_value(sigwarden.admin_port, "sigwarden_config_reloads_total", result="success") == 1
    assert metric_value(sigwarden.admin_port, "sigwarden_route_ready", route="new") == 1


def test_invalid_config_is_refused_and_the_old_one_keeps_serving(sigwarden, upstream):
    routes = [dict(sigwarden.config["routes"][0], secrets=["sendclod"])]
    _rewrite(sigwarden, routes=routes)
    line = wait_for_log(sigwarden, "config_rejected")
    assert line["source"] == str(sigwarden.config_path)
    assert line["problems"] == ["routes[0].secrets[0]: unknown secret 'sendclod' (defined: sendcloud, sendcloud-old)"]
    assert metric_value(sigwarden.admin_port, "sigwarden_config_reloads_total", result="failure") == 1
    assert sigwarden.request("POST", "/webhooks/sendcloud", BODY, signed_headers(BODY))[0] == 200
    assert sigwarden.request("POST", "/webhooks/sendcloud", BODY)[0] == 401
    assert readiness(sigwarden.admin_port)[0] == 200


def test_edit_in_place_is_noticed_too(sigwarden):
    text = sigwarden.config_path.read_text().replace("mode: enforce", "")
    config = yaml.safe_load(text)
    config["mode"] = "report"
    with open(sigwarden.config_path, "w") as file:  # same inode, new content
        file.write(yaml.safe_dump(config))
    wait_until(lambda: sigwarden.request("POST", "/webhooks/sendcloud", BODY)[0] == 200, deadline=5)


def test_sighup_reloads_config_and_secrets(start_sigwarden, tmp_path):
    volume = MountedVolume(tmp_path / "secret", {"key": FIRST})
    process = start_sigwarden(**_file_secret_config(volume))
    process.process.send_signal(signal.SIGHUP)
    wait_for_log(process, "config_reloaded", reason="SIGHUP")
    assert process.process.poll() is None
    assert _status(process, FIRST) == 200


def test_listen_change_needs_a_restart_and_says_so(sigwarden):
    _rewrite(sigwarden, listen="127.0.0.1:1")
    line = wait_for_log(sigwarden, "restart_required", key="listen")
    assert "restart" in line["message"]
    assert sigwarden.request("GET", "/")[0] == 200  # still on the old port


def test_rotation_with_two_secrets_keeps_both_valid_meanwhile(start_sigwarden, tmp_path):
    old = MountedVolume(tmp_path / "old", {"key": FIRST})
    new = MountedVolume(tmp_path / "new", {"key": SECOND})
    process = start_sigwarden(
        secrets={"current": {"file": new.path("key")}, "previous": {"file": old.path("key")}},
        routes=[{"name": "sendcloud", "path": "/webhooks/sendcloud", "secrets": ["current", "previous"]}],
    )
    for secret in (FIRST, SECOND):
        status, _, _ = process.request("POST", "/webhooks/sendcloud", BODY, {"Sendcloud-Signature": sign(BODY, secret)})
        assert status == 200
    lines = request_lines(process, 2)
    assert [line["key_id"] for line in lines] == ["previous", "current"]
    assert FIRST not in process.logs() and SECOND not in process.logs()
