"""The `sigwarden` command as a user runs it: check, run, sign, send, --version, and their exit codes."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from core_support import closed_port
from harness import OLD_SECRET, REPO, SECRET, Sigwarden, base_config, free_port, wait_for_port

pytestmark = pytest.mark.e2e

EVENTS = [
    "parcel_status_changed",
    "integration_connected",
    "integration_updated",
    "integration_deleted",
    "return_created",
]


def sigwarden_command(*args: str, stdin: bytes | None = None, env: dict | None = None, timeout: float = 30):
    return subprocess.run(
        [sys.executable, "-m", "sigwarden", *args],
        input=stdin,
        capture_output=True,
        cwd=REPO,
        env={**os.environ, "E2E_SECRET": SECRET, "E2E_OLD_SECRET": OLD_SECRET, **(env or {})},
        timeout=timeout,
    )


def write_config(tmp_path: Path, data: dict | str) -> Path:
    path = tmp_path / "sigwarden.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


# --- --version -------------------------------------------------------------------------------


def test_version_names_sigwarden_and_mitmproxy():
    from mitmproxy import version

    import sigwarden

    result = sigwarden_command("--version")
    assert result.returncode == 0
    assert result.stdout.decode().strip() == f"sigwarden {sigwarden.__version__} (mitmproxy {version.VERSION})"


def test_no_command_is_a_usage_error():
    result = sigwarden_command()
    assert result.returncode == 2
    assert b"usage: sigwarden" in result.stderr


# --- check -------------------------------------------------------------------------------------


def test_check_a_valid_config_prints_a_redacted_summary(tmp_path):
    key = tmp_path / "key"
    key.write_text("secret-from-a-file-0123456789\n")
    config = base_config("http://127.0.0.1:8000")
    config["secrets"]["from-file"] = {"file": str(key), "expires": "2099-01-01T00:00:00Z"}
    config["routes"][0]["secrets"].append("from-file")
    result = sigwarden_command("check", "-c", str(write_config(tmp_path, config)))
    assert result.returncode == 0, result.stderr
    output = result.stdout.decode()
    assert f"config: {tmp_path / 'sigwarden.yaml'}" in output
    assert f"listen: {config['listen']} → upstream http://127.0.0.1:8000 (mode enforce, unmatched pass)" in output
    assert "  sendcloud: env $E2E_SECRET: ok" in output
    assert f"  from-file: file {key}, expires 2099-01-01T00:00:00+00:00: ok" in output
    assert (
        "  sendcloud: /webhooks/sendcloud, /index.php/webhooks/sendcloud scheme=sendcloud "
        "secrets=[sendcloud, sendcloud-old, from-file] max_body=64KiB mode=enforce"
    ) in output
    assert "  query-routed: /index.php ?route=sendcloud/webhook" in output
    everything = result.stdout + result.stderr
    for secret in (SECRET, OLD_SECRET, "secret-from-a-file-0123456789"):
        assert secret.encode() not in everything


def test_check_never_prints_an_inline_value_and_warns_about_it(tmp_path):
    config = base_config("http://127.0.0.1:8000")
    config["secrets"]["sendcloud"] = {"value": "inline-secret-value-0123456"}
    config["secrets"]["sendcloud-old"] = {"value": "short"}
    result = sigwarden_command("check", "-c", str(write_config(tmp_path, config)))
    assert result.returncode == 0
    assert b"inline-secret-value-0123456" not in result.stdout + result.stderr
    assert b"short" not in result.stdout  # the value, not the warning's wording
    assert "  sendcloud: inline value: ok" in result.stdout.decode()
    warnings = result.stderr.decode().splitlines()
    assert (
        "warning: secrets.sendcloud.value: an inline secret ends up in the config file; prefer file or env" in warnings
    )
    assert (
        "warning: secrets.sendcloud-old: shorter than 16 characters; Sendcloud's signature keys are at least 16"
    ) in warnings


def test_check_fails_with_file_key_and_reason(tmp_path):
    path = write_config(
        tmp_path,
        textwrap.dedent(
            """\
            upstream: http://127.0.0.1:8000
            secrets:
              sendcloud: {env: E2E_SECRET}
              sendcloud-old: {env: E2E_OLD_SECRET}
            routes:
              - name: sendcloud
                path: /webhooks/sendcloud
                secrets: [sendcloud, sendclod]
                max_body: 1MB
            """
        ),
    )
    result = sigwarden_command("check", "-c", str(path))
    assert result.returncode == 2
    assert result.stdout == b""
    assert result.stderr.decode().splitlines() == [
        "sigwarden: invalid configuration",
        f"{path}: routes[0].secrets[1]: unknown secret 'sendclod' (defined: sendcloud, sendcloud-old)",
        f"{path}: routes[0].max_body: expected a size such as 512B, 64KiB or 1MiB, got '1MB'",
    ]


def test_check_fails_for_an_unreadable_secret(tmp_path):
    config = base_config("http://127.0.0.1:8000")
    config["secrets"]["sendcloud"] = {"file": str(tmp_path / "absent")}
    result = sigwarden_command("check", "-c", str(write_config(tmp_path, config)))
    assert result.returncode == 2
    assert f"error: secrets.sendcloud: file {tmp_path / 'absent'} does not exist" in result.stderr.decode()
    assert (
        f"  sendcloud: file {tmp_path / 'absent'}: file {tmp_path / 'absent'} does not exist" in result.stdout.decode()
    )


def test_check_fails_for_an_unset_variable(tmp_path):
    config = base_config("http://127.0.0.1:8000")
    result = sigwarden_command("check", "-c", str(write_config(tmp_path, config)), env={"E2E_OLD_SECRET": ""})
    assert result.returncode == 2
    assert "error: secrets.sendcloud-old: env $E2E_OLD_SECRET is empty" in result.stderr.decode()


def test_check_fails_for_an_expired_secret(tmp_path):
    config = base_config("http://127.0.0.1:8000")
    config["secrets"]["sendcloud-old"]["expires"] = "2020-01-31T00:00:00Z"
    result = sigwarden_command("check", "-c", str(write_config(tmp_path, config)))
    assert result.returncode == 2
    assert "error: secrets.sendcloud-old: expired" in result.stderr.decode()
    assert "  sendcloud-old: env $E2E_OLD_SECRET, expires 2020-01-31T00:00:00+00:00: expired" in result.stdout.decode()


def test_check_reads_sigwarden_config_when_no_file_is_given(tmp_path):
    path = write_config(tmp_path, base_config("http://127.0.0.1:8000"))
    result = sigwarden_command("check", env={"SIGWARDEN_CONFIG": str(path)})
    assert result.returncode == 0
    assert f"config: {path}" in result.stdout.decode()


def test_check_without_any_config_names_the_default_path(tmp_path):
    env = {key: value for key, value in os.environ.items() if key != "SIGWARDEN_CONFIG"}
    result = subprocess.run(
        [sys.executable, "-m", "sigwarden", "check"], capture_output=True, cwd=REPO, env=env, timeout=30
    )
    assert result.returncode == 2
    assert "/etc/sigwarden/config.yaml: (file): cannot read it" in result.stderr.decode()


# --- run ---------------------------------------------------------------------------------------


def test_run_refuses_an_invalid_config_with_exit_2(tmp_path):
    config = base_config("http://127.0.0.1:8000", mode="strict")
    path = write_config(tmp_path, config)
    result = sigwarden_command("run", "-c", str(path))
    assert result.returncode == 2
    assert result.stderr.decode().splitlines() == [
        "sigwarden: invalid configuration",
        f"{path}: mode: expected one of enforce, report, got 'strict'",
    ]


def test_run_refuses_an_invalid_override_with_exit_2(tmp_path):
    path = write_config(tmp_path, base_config("http://127.0.0.1:8000"))
    result = sigwarden_command("run", "-c", str(path), "--listen", "nowhere")
    assert result.returncode == 2
    assert "command line: --listen: expected host:port such as 0.0.0.0:8080, got 'nowhere'" in result.stderr.decode()


def test_run_serves_with_overrides_and_exits_0_after_sigterm(tmp_path, upstream):
    config = base_config(f"http://127.0.0.1:{closed_port()}")  # the override replaces this
    process = Sigwarden(tmp_path, config)
    listen = free_port()
    process.command = lambda: [  # type: ignore[method-assign]
        sys.executable, "-m", "sigwarden", "run", "-c", str(process.config_path),
        "--listen", f"127.0.0.1:{listen}", "--upstream", upstream.url,
    ]  # fmt: skip
    process.config["listen"] = f"127.0.0.1:{listen}"
    process.start()
    try:
        status, _, _ = process.request("GET", "/shop")
        assert status == 200
        assert upstream.received[0].path == "/shop"
    finally:
        assert process.stop() == 0
    assert any(line.get("event") == "stopped" for line in process.log_lines())


def test_run_exits_nonzero_when_the_port_is_taken(tmp_path, upstream):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        config = base_config(upstream.url, listen=f"127.0.0.1:{taken.getsockname()[1]}")
        result = sigwarden_command("run", "-c", str(write_config(tmp_path, config)))
    assert result.returncode == 1
    assert b"listen_failed" in result.stderr


# --- sign --------------------------------------------------------------------------------------


def test_sign_reproduces_sendclouds_documented_vector_from_a_file(tmp_path):
    (tmp_path / "body.json").write_bytes(b'{"key": "value"}')
    (tmp_path / "key").write_text("secretkey\n")
    result = sigwarden_command("sign", "--secret-file", str(tmp_path / "key"), str(tmp_path / "body.json"))
    assert result.returncode == 0
    assert result.stdout == b"1eed4b3d41f4653ac64fd56f1bf1cbfd349e4482cbc11dff7134bd93e5da4b0a\n"


def test_sign_reads_stdin_byte_exact():
    body = b'{"key": "value"}\r\n  \x00\xff trailing  \n'
    result = sigwarden_command("sign", "--secret-env", "SIGN_KEY", stdin=body, env={"SIGN_KEY": " secretkey \n"})
    assert result.returncode == 0
    assert result.stdout.decode().strip() == hmac.new(b"secretkey", body, hashlib.sha256).hexdigest()


def test_sign_of_a_file_and_of_stdin_agree(tmp_path):
    body = os.urandom(4096)
    (tmp_path / "body").write_bytes(body)
    from_file = sigwarden_command("sign", "--secret-env", "E2E_SECRET", str(tmp_path / "body"))
    from_stdin = sigwarden_command("sign", "--secret-env", "E2E_SECRET", "-", stdin=body)
    assert (
        from_file.stdout
        == from_stdin.stdout
        == hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest().encode() + b"\n"
    )


def test_sign_without_a_secret_fails():
    result = sigwarden_command("sign", "--secret-env", "SIGWARDEN_TEST_UNSET", stdin=b"{}")
    assert result.returncode == 1
    assert result.stderr.decode().strip() == "sigwarden: environment variable SIGWARDEN_TEST_UNSET is not set"
    result = sigwarden_command("sign", "--secret-env", "EMPTY", stdin=b"{}", env={"EMPTY": " "})
    assert result.returncode == 1
    assert result.stderr.decode().strip() == "sigwarden: the secret is empty"


def test_sign_needs_exactly_one_secret_source(tmp_path):
    result = sigwarden_command("sign", stdin=b"{}")
    assert result.returncode == 2
    result = sigwarden_command("sign", "--secret-env", "E2E_SECRET", "--secret-file", str(tmp_path), stdin=b"{}")
    assert result.returncode == 2


# --- send --------------------------------------------------------------------------------------


@pytest.mark.parametrize("event", EVENTS)
def test_send_delivers_each_event_signed_and_serialised_like_sendcloud(shared, event):
    sigwarden, upstream = shared
    url = f"http://127.0.0.1:{sigwarden.port}/webhooks/sendcloud"
    result = sigwarden_command("send", url, "--secret-env", "E2E_SECRET", "--event", event)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode() == '200 OK\n{"ok": true}\n'
    [received] = upstream.received
    assert received.header("X-Webhook-Verified") == "true"
    assert received.header("Content-Type") == "application/json"
    document = json.loads(received.body)
    assert document["action"] == event
    assert isinstance(document["timestamp"], int) and document["timestamp"] > 10**12  # milliseconds
    assert received.body == json.dumps(document).encode()  # json.dumps defaults, non-ASCII escaped
    assert received.body.isascii()


def test_send_defaults_to_parcel_status_changed(shared):
    sigwarden, upstream = shared
    result = sigwarden_command(
        "send", f"http://127.0.0.1:{sigwarden.port}/webhooks/sendcloud", "--secret-env", "E2E_SECRET"
    )
    assert result.returncode == 0
    assert json.loads(upstream.received[0].body)["action"] == "parcel_status_changed"


def test_send_with_a_wrong_secret_prints_the_refusal_and_exits_1(shared):
    sigwarden, upstream = shared
    url = f"http://127.0.0.1:{sigwarden.port}/webhooks/sendcloud"
    result = sigwarden_command("send", url, "--secret-env", "WRONG", env={"WRONG": "not-the-secret-at-all-0123"})
    assert result.returncode == 1
    assert result.stdout.decode() == (
        '401 Unauthorized\n{"error": "invalid_signature", "message": "The signature or credential does not match."}\n'
    )
    assert upstream.received == []


def test_send_a_body_from_a_file_byte_exact(shared, tmp_path):
    sigwarden, upstream = shared
    body = b'{"action": "test_webhook", "timestamp": 1764320000000}\n'
    (tmp_path / "body.json").write_bytes(body)
    (tmp_path / "key").write_text(OLD_SECRET + "\n")
    url = f"http://127.0.0.1:{sigwarden.port}/index.php?route=sendcloud/webhook"
    result = sigwarden_command(
        "send", url, "--secret-file", str(tmp_path / "key"), "--body", str(tmp_path / "body.json")
    )
    assert result.returncode == 1  # the query-routed route takes only the current secret
    assert result.stdout.startswith(b"401 Unauthorized\n")
    url = f"http://127.0.0.1:{sigwarden.port}/index.php/webhooks/sendcloud"
    result = sigwarden_command(
        "send", url, "--secret-file", str(tmp_path / "key"), "--body", str(tmp_path / "body.json")
    )
    assert result.returncode == 0
    assert upstream.received[0].body == body
    assert upstream.received[0].header("X-Webhook-Key-Id") == "sendcloud-old"


def test_send_exits_1_on_a_non_2xx_answer_from_the_application(shared):
    sigwarden, upstream = shared
    upstream.status, upstream.reply = 500, b'{"error": "shop down"}'
    try:
        result = sigwarden_command(
            "send", f"http://127.0.0.1:{sigwarden.port}/webhooks/sendcloud", "--secret-env", "E2E_SECRET"
        )
    finally:
        upstream.reply = b'{"ok": true}'
    assert result.returncode == 1
    assert result.stdout.decode() == '500 Internal Server Error\n{"error": "shop down"}\n'


def test_send_to_nothing_listening_exits_1():
    result = sigwarden_command(
        "send", f"http://127.0.0.1:{closed_port()}/webhooks/sendcloud", "--secret-env", "E2E_SECRET"
    )
    assert result.returncode == 1
    assert "sigwarden: cannot send to" in result.stderr.decode()


def test_send_an_unknown_event_is_a_usage_error():
    result = sigwarden_command("send", "http://127.0.0.1:1/", "--secret-env", "E2E_SECRET", "--event", "order_shipped")
    assert result.returncode == 2


# --- mitmdump with the addon script -------------------------------------------------------------


def test_the_addon_loads_into_plain_mitmdump(tmp_path, upstream):
    mitmdump = Path(sys.executable).parent / "mitmdump"
    listen = free_port()
    config = base_config(upstream.url)
    path = write_config(tmp_path, config)
    confdir = tmp_path / "confdir"
    process = subprocess.Popen(
        [
            str(mitmdump),
            "-q",
            "-s",
            str(REPO / "addon" / "sigwarden_addon.py"),
            "--set",
            f"sigwarden_config={path}",
            "--mode",
            f"reverse:{upstream.url}@127.0.0.1:{listen}",
            "--set",
            "connection_strategy=lazy",
            "--set",
            "keep_host_header=true",
            "--set",
            f"confdir={confdir}",
        ],  # fmt: skip
        env={**os.environ, "E2E_SECRET": SECRET, "E2E_OLD_SECRET": OLD_SECRET},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        from core_support import exchange, request_bytes
        from harness import sign

        wait_for_port(listen, deadline=30, process=process)
        body = b'{"action": "parcel_status_changed"}'
        answer = exchange(
            listen, request_bytes("POST", "/webhooks/sendcloud", body, {"Sendcloud-Signature": sign(body)})
        )
        assert answer.status == 200
        assert upstream.received[0].header("X-Webhook-Verified") == "true"
        forged = exchange(listen, request_bytes("POST", "/WEBHOOKS/sendcloud/", body, {"X-Webhook-Verified": "true"}))
        assert forged.status == 401 and forged.json()["error"] == "missing_signature"
        large = exchange(
            listen, request_bytes("POST", "/webhooks/sendcloud", headers={"Content-Length": str(50 << 20)})
        )
        assert large.status == 413 and large.json()["error"] == "body_too_large"
        assert len(upstream.received) == 1
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=20)
    assert SECRET.encode() not in output


def test_mitmdump_without_the_config_option_refuses_to_start():
    mitmdump = Path(sys.executable).parent / "mitmdump"
    script = REPO / "addon" / "sigwarden_addon.py"
    done = subprocess.run(
        [str(mitmdump), "-q", "-s", str(script), "--mode", f"reverse:http://127.0.0.1:9@127.0.0.1:{free_port()}"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode != 0
    assert "sigwarden needs its config: --set sigwarden_config=FILE" in done.stdout + done.stderr
