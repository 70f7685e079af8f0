"""upstream_tls against a real HTTPS upstream whose CA and certificate the test makes."""

from __future__ import annotations

import json
import time

import pytest

from harness import sign
from limits_support import SilentServer, TlsUpstream, make_pki, start_module_sigwarden

pytestmark = pytest.mark.e2e

BODY = json.dumps({"action": "parcel_status_changed", "timestamp": 1764320000000}).encode()


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"), ["localhost", "127.0.0.1"])


@pytest.fixture(scope="module")
def tls_upstream(pki):
    server = TlsUpstream(pki).start()
    yield server
    server.stop()


@pytest.fixture
def start(tmp_path, tls_upstream):
    started = []

    def start(host: str = "localhost", env: dict[str, str] | None = None, **overrides):
        tls_upstream.received.clear()
        tls_upstream.server_names.clear()
        folder = tmp_path / f"sigwarden{len(started)}"
        folder.mkdir()
        process = start_module_sigwarden(folder, f"https://{host}:{tls_upstream.port}", env, **overrides)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


def signed_post(sigwarden):
    return sigwarden.request("POST", "/webhooks/sendcloud", BODY, {"Sendcloud-Signature": sign(BODY)})


def test_untrusted_certificate_is_refused_502_and_nothing_is_forwarded(start, tls_upstream):
    sigwarden = start()  # verification on by default; the test CA is in no trust store
    status, headers, body = signed_post(sigwarden)
    assert status == 502
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["error"] == "upstream_unavailable"
    assert tls_upstream.received == []
    status, _, _ = sigwarden.request("GET", "/shop")
    assert status == 502
    assert tls_upstream.received == []


def test_ca_file_trusts_the_upstream_with_sni_and_the_host_header_kept(start, tls_upstream, pki):
    sigwarden = start(upstream_tls={"ca_file": str(pki.ca_file)})
    status, _, body = signed_post(sigwarden)
    assert status == 200, body
    [received] = tls_upstream.received
    assert received.header("X-Webhook-Verified") == "true"
    assert received.header("Host") == f"127.0.0.1:{sigwarden.port}"  # the client's Host, not the upstream's
    assert received.body == BODY
    assert tls_upstream.server_names[-1] == "localhost"  # SNI: the upstream URL's host name


def test_ca_file_still_checks_the_host_name(start, tls_upstream, tmp_path):
    other = make_pki(tmp_path / "other", ["other.example"])  # a trusted CA, a certificate for another name
    other_upstream = TlsUpstream(other).start()
    try:
        folder = tmp_path / "mismatch"
        folder.mkdir()
        sigwarden = start_module_sigwarden(
            folder, f"https://localhost:{other_upstream.port}", upstream_tls={"ca_file": str(other.ca_file)}
        )
        try:
            status, _, body = signed_post(sigwarden)
            assert status == 502
            assert json.loads(body)["error"] == "upstream_unavailable"
            assert other_upstream.received == []
        finally:
            sigwarden.stop()
    finally:
        other_upstream.stop()


def test_verify_false_accepts_any_certificate(start, tls_upstream):
    sigwarden = start(host="127.0.0.1", upstream_tls={"verify": False})
    status, _, body = signed_post(sigwarden)
    assert status == 200, body
    assert len(tls_upstream.received) == 1


def test_without_ca_file_the_system_trust_store_is_used(start, tls_upstream, pki):
    # SSL_CERT_FILE names the system's CA bundle for OpenSSL; an operator can point it elsewhere
    sigwarden = start(env={"SSL_CERT_FILE": str(pki.ca_file)})
    status, _, body = signed_post(sigwarden)
    assert status == 200, body
    assert len(tls_upstream.received) == 1


def test_tls_handshake_that_never_completes_gets_502_after_the_connect_timeout(tmp_path):
    silent = SilentServer().start()  # takes the TCP connection, never answers the ClientHello
    sigwarden = start_module_sigwarden(
        tmp_path, f"https://127.0.0.1:{silent.port}", limits={"upstream_connect_timeout": "1.5s"}
    )
    try:
        started = time.monotonic()
        status, _, body = sigwarden.request("GET", "/shop", timeout=10)
        elapsed = time.monotonic() - started
        assert (status, json.loads(body)["error"]) == (502, "upstream_unavailable")
        assert 1.3 <= elapsed <= 1.5 + 2.5
        assert silent.closed_by_peer.wait(5)
    finally:
        sigwarden.stop()
        silent.stop()
