"""The pure parts of operations: client addresses, the admin answers, reload decisions, metrics."""

from __future__ import annotations

import datetime
import ipaddress
import json
from pathlib import Path

import yaml

from sigwarden.admin import AdminServer
from sigwarden.config import ConfigError
from sigwarden.forwarded import client_address
from sigwarden.metrics import Metrics
from sigwarden.outcomes import Outcome
from sigwarden.reload import ConfigSource, Reloader

TRUSTED = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8")]


def test_peer_is_the_client_without_trusted_proxies():
    assert client_address("10.1.2.3", ["203.0.113.9"], []) == "10.1.2.3"


def test_untrusted_peer_cannot_claim_another_address():
    assert client_address("198.51.100.7", ["203.0.113.9"], TRUSTED) == "198.51.100.7"


def test_trusted_peer_names_the_nearest_untrusted_hop():
    assert client_address("10.0.0.2", ["6.6.6.6, 203.0.113.9, 10.0.0.9"], TRUSTED) == "203.0.113.9"


def test_hops_over_several_headers_are_one_chain():
    assert client_address("10.0.0.2", ["203.0.113.9", "10.0.0.9"], TRUSTED) == "203.0.113.9"


def test_all_trusted_hops_give_the_leftmost():
    assert client_address("10.0.0.2", ["10.0.0.8, 10.0.0.9"], TRUSTED) == "10.0.0.8"


def test_garbage_in_the_chain_stops_the_walk():
    assert client_address("10.0.0.2", ["203.0.113.9, not-an-ip, 10.0.0.9"], TRUSTED) == "10.0.0.9"


def test_ipv4_mapped_and_bracketed_ipv6_and_ports():
    assert client_address("::ffff:10.0.0.2", ["[2001:db8::1]:4711"], TRUSTED) == "2001:db8::1"
    assert client_address("10.0.0.2", ["203.0.113.9:5555"], TRUSTED) == "203.0.113.9"


def _admin(ready: bool = True) -> AdminServer:
    return AdminServer(lambda: (ready, {"status": "ready" if ready else "draining"}), lambda: (b"m 1\n", "text/plain"))


def test_admin_answers():
    admin = _admin()
    assert admin.answer("GET", "/healthz")[0] == 200
    assert admin.answer("HEAD", "/readyz")[0] == 200
    assert admin.answer("GET", "/metrics") == (200, "text/plain", b"m 1\n")
    assert admin.answer("GET", "/webhooks/sendcloud")[0] == 404
    assert admin.answer("DELETE", "/healthz")[0] == 405
    status, _, body = _admin(ready=False).answer("GET", "/readyz")
    assert (status, json.loads(body)) == (503, {"status": "draining"})


class Target:
    def __init__(self) -> None:
        self.accepted: list[tuple[object, str]] = []
        self.rejected: list[tuple[ConfigError, str]] = []
        self.refreshes: list[bool] = []

    def config_accepted(self, config, reason):
        self.accepted.append((config, reason))

    def config_rejected(self, error, reason):
        self.rejected.append((error, reason))

    def refresh_secrets(self, force=False):
        self.refreshes.append(force)


def _config_file(tmp_path: Path, **extra) -> Path:
    path = tmp_path / "config.yaml"
    data = {
        "upstream": "http://127.0.0.1:8000",
        "secrets": {"s": {"value": "x" * 20}},
        "routes": [{"name": "r", "path": "/hook", "secrets": ["s"]}],
        **extra,
    }
    temporary = tmp_path / "config.new"
    temporary.write_text(yaml.safe_dump(data))
    temporary.rename(path)
    return path


def test_reloader_applies_a_changed_file_and_keeps_overrides(tmp_path):
    path = _config_file(tmp_path)
    source = ConfigSource(str(path), {"upstream": "http://127.0.0.1:9999"})
    _, baseline = source.load_with_baseline()
    target = Target()
    reloader = Reloader(source, target, baseline)
    reloader.check()
    assert target.accepted == [] and target.refreshes == [False]
    _config_file(tmp_path, mode="report")
    reloader.check()
    [(config, reason)] = target.accepted
    assert (config.mode, config.upstream, reason) == ("report", "http://127.0.0.1:9999", "file changed")


def test_reloader_ignores_a_swap_to_the_same_content(tmp_path):
    path = _config_file(tmp_path)
    source = ConfigSource(str(path))
    reloader = Reloader(source, (target := Target()), source.load_with_baseline()[1])
    _config_file(tmp_path)
    reloader.check()
    assert target.accepted == [] and target.rejected == []


def test_reloader_rejects_an_invalid_file_once(tmp_path):
    path = _config_file(tmp_path)
    source = ConfigSource(str(path))
    reloader = Reloader(source, (target := Target()), source.load_with_baseline()[1])
    path.write_text("routes: [\n")
    reloader.check()
    reloader.check()
    [(error, reason)] = target.rejected
    assert error.source == str(path) and reason == "file changed"
    assert "invalid YAML" in str(error)


def test_sighup_forces_config_and_secrets(tmp_path):
    path = _config_file(tmp_path)
    source = ConfigSource(str(path))
    reloader = Reloader(source, (target := Target()), source.load_with_baseline()[1])
    reloader.reload()
    assert [reason for _, reason in target.accepted] == ["SIGHUP"]
    assert target.refreshes == [True]


def test_metrics_forget_routes_and_secrets_that_are_gone():
    metrics = Metrics("1", "2")
    metrics.show_routes({"a": True, "b": False})
    metrics.show_routes({"a": False})
    metrics.show_secret_expiries({"old": datetime.datetime(2027, 1, 31, tzinfo=datetime.UTC)})
    metrics.show_secret_expiries({})
    metrics.count_request("a", Outcome.INVALID_SIGNATURE)
    metrics.observe_upstream("a", 404, 0.01)
    text = metrics.exposition().decode()
    assert 'sigwarden_route_ready{route="a"} 0.0' in text
    assert 'sigwarden_route_ready{route="b"}' not in text  # counters keep their history
    assert "sigwarden_secret_expiry_timestamp_seconds{" not in text
    assert 'sigwarden_requests_total{outcome="invalid_signature",route="a"} 1.0' in text
    assert 'sigwarden_upstream_responses_total{route="a",status_class="4xx"} 1.0' in text
    assert "_created" not in text
