"""Smoke checks against the sigwarden container image (`make image-test`, via scripts/image-test).

Runs the image the way Kubernetes runs the sidecar: read-only root filesystem, a
writable tmpfs at /tmp, every capability dropped, the image's own non-root user,
the config mounted as a directory at /etc/sigwarden and the Secret laid out as the
kubelet lays it out (`key -> ..data/key`, `..data -> ..<timestamp>`, swapped by a
rename). A tiny upstream on loopback stands in for the application.

Each check is reported on its own line; the exit status is 1 when any failed.
Standard library only, so that it runs on the host's python3 without the project's venv.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import hmac
import http.client
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

EXPECTED_UID = 10001  # the Dockerfile's USER
WEBHOOK_PATH = "/webhooks/sendcloud"
APP_PROBE_PATH = "/app/health"  # an unmatched path: what the app's own probes use through the proxy
ROTATION_DEADLINE = 5.0  # SPEC: a rotation takes effect within 2 s of the swap; margin for a busy machine
SHUTDOWN_GRACE = 5


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sign(body: bytes, secret: str) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass
class Seen:
    method: str
    path: str
    verified: str | None
    key_id: str | None


@dataclass
class Upstream:
    """The stand-in application: answers 200 to everything and records what reached it."""

    seen: list[Seen] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    def start(self) -> int:
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                upstream.seen.append(
                    Seen(
                        self.command,
                        self.path,
                        self.headers.get("X-Webhook-Verified"),
                        self.headers.get("X-Webhook-Key-Id"),
                    )
                )
                reply = b'{"app": "stand-in"}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            do_GET = do_POST = answer

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self.server.server_address[1]

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


class KubernetesSecretDir:
    """A directory laid out like a mounted Secret volume, swapped atomically like the kubelet does."""

    def __init__(self, root: Path, key: str):
        self.root = root
        root.mkdir(mode=0o755)
        root.chmod(0o755)  # the container's user must read it
        self._write(key)
        (root / "key").symlink_to("..data/key")

    def _write(self, key: str) -> None:
        stamp = datetime.datetime.now(datetime.UTC).strftime("..%Y_%m_%d_%H_%M_%S.%f")
        version = self.root / stamp
        version.mkdir(mode=0o755)
        version.chmod(0o755)
        (version / "key").write_text(key + "\n")
        (version / "key").chmod(0o644)
        old = os.readlink(self.root / "..data") if (self.root / "..data").is_symlink() else None
        (self.root / "..data_tmp").symlink_to(stamp)
        os.rename(self.root / "..data_tmp", self.root / "..data")  # the atomic swap
        if old:
            shutil.rmtree(self.root / old)

    def rotate(self, key: str) -> None:
        self._write(key)


def write_config(directory: Path, listen: int, admin: int, upstream: int) -> None:
    directory.mkdir(mode=0o755)
    directory.chmod(0o755)
    config = f"""\
listen: 127.0.0.1:{listen}
upstream: http://127.0.0.1:{upstream}
admin_listen: 127.0.0.1:{admin}
mode: enforce
secrets:
  sendcloud:
    file: /var/run/secrets/sendcloud/key
routes:
  - name: sendcloud
    path: {WEBHOOK_PATH}
    secrets: [sendcloud]
drain_delay: 0s
shutdown_grace: {SHUTDOWN_GRACE}s
log_format: json
"""
    (directory / "config.yaml").write_text(config)
    (directory / "config.yaml").chmod(0o644)


def request(port: int, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, body=body or None, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def post_webhook(port: int, body: bytes, signature: str) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/json", "Sendcloud-Signature": signature}
    return request(port, "POST", WEBHOOK_PATH, body, headers)


def podman(runtime: str, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", "--runtime", runtime, *args], capture_output=True, text=True, check=check, timeout=timeout
    )


class Checks:
    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0

    def run(self, name: str, check: Callable[[], str]) -> bool:
        """`check` returns a detail on success and raises AssertionError (or any error) on failure."""
        try:
            detail = check()
        except Exception as error:  # every failure is reported, then the next check runs
            self.failed += 1
            print(f"FAIL  {name}: {type(error).__name__}: {error}", flush=True)
            return False
        self.passed += 1
        print(f"ok    {name}{': ' + detail if detail else ''}", flush=True)
        return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", required=True)
    parser.add_argument("--runtime", default="runc", help="OCI runtime for podman (crun needs a pure cgroup v2 host)")
    parser.add_argument(
        "--podman-arg", action="append", default=[], help="extra `podman run` argument (repeat), e.g. --ulimit=…"
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="sigwarden-image-test-"))
    work.chmod(0o755)
    old_key, new_key = "old-" + secrets.token_hex(16), "new-" + secrets.token_hex(16)
    upstream = Upstream()
    upstream_port = upstream.start()
    listen, admin = free_port(), free_port()
    write_config(work / "config", listen, admin, upstream_port)
    secret_dir = KubernetesSecretDir(work / "secret", old_key)
    name = f"sigwarden-image-test-{os.getpid()}"
    checks = Checks()
    try:
        started = time.monotonic()
        podman(
            args.runtime,
            "run",
            "--detach",
            "--name",
            name,
            "--network",
            "host",  # the stand-in app and the checks live on the host's loopback
            "--read-only",
            "--read-only-tmpfs=false",  # nothing writable but the /tmp below, like the Pod's emptyDir
            "--tmpfs",
            "/tmp:rw,nosuid,nodev,mode=1777,size=64m",
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
            "--volume",
            f"{work / 'config'}:/etc/sigwarden:ro",
            "--volume",
            f"{work / 'secret'}:/var/run/secrets/sendcloud:ro",
            *args.podman_arg,
            args.image,  # no arguments: the image's ENTRYPOINT and default config path
        )

        def running() -> bool:
            state = podman(args.runtime, "inspect", "--format", "{{.State.Running}}", name, check=False)
            return state.stdout.strip() == "true"

        def listening() -> str:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if not running():
                    raise AssertionError("the container exited:\n" + podman(args.runtime, "logs", name).stderr)
                try:
                    with socket.create_connection(("127.0.0.1", listen), timeout=0.5):
                        return f"accepting on 127.0.0.1:{listen} after {time.monotonic() - started:.1f}s"
                except OSError:
                    time.sleep(0.05)
            raise AssertionError(f"nothing listens on 127.0.0.1:{listen} after 60s")

        if not checks.run("proxy listens", listening):
            return report(checks, args.runtime, name)

        def non_root() -> str:
            pid = podman(args.runtime, "inspect", "--format", "{{.State.Pid}}", name).stdout.strip()
            status = Path(f"/proc/{pid}/status").read_text()
            uids = next(line.split()[1:] for line in status.splitlines() if line.startswith("Uid:"))
            gids = next(line.split()[1:] for line in status.splitlines() if line.startswith("Gid:"))
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
            assert "sigwarden" in command, f"PID 1 of the container is {command!r}"
            assert set(uids) == {str(EXPECTED_UID)}, f"uids {uids}"
            assert "0" not in gids, f"gids {gids}"
            return f"PID 1 `{command}` runs as uid {uids[0]}, gid {gids[0]}"

        checks.run("process runs as the image's non-root user", non_root)

        def read_only_root() -> str:
            # As root inside the container, so that only a read-only filesystem can refuse the writes.
            probe = (
                "import errno, sys\n"
                "for path in ('/probe', '/opt/sigwarden/probe', '/etc/sigwarden/probe'):\n"
                "    try:\n"
                "        open(path, 'w')\n"
                "    except OSError as error:\n"
                "        assert error.errno == errno.EROFS, (path, error)\n"
                "    else:\n"
                "        sys.exit(path + ' is writable')\n"
                "open('/tmp/probe', 'w').write('ok')\n"
            )
            result = podman(args.runtime, "exec", "--user", "0", name, "python3", "-c", probe, check=False)
            assert result.returncode == 0, (result.stdout + result.stderr).strip()
            listing = podman(args.runtime, "exec", name, "ls", "/tmp").stdout.split()
            confdirs = [entry for entry in listing if entry.startswith("sigwarden-")]
            assert confdirs, f"no mitmproxy confdir in /tmp: {listing}"
            return f"/, /opt, /etc/sigwarden read-only (EROFS); /tmp writable, holds {confdirs[0]}"

        checks.run("root filesystem is read-only, /tmp writable", read_only_root)

        body = json.dumps({"action": "parcel_status_changed", "timestamp": int(time.time() * 1000)}).encode()

        def signed() -> str:
            before = len(upstream.seen)
            status, reply = post_webhook(listen, body, sign(body, old_key))
            assert status == 200, f"status {status}: {reply[:200]!r}"
            arrived = upstream.seen[before:]
            assert len(arrived) == 1 and arrived[0].path == WEBHOOK_PATH, f"upstream saw {arrived}"
            assert arrived[0].verified == "true" and arrived[0].key_id == "sendcloud", f"upstream saw {arrived[0]}"
            return "200, upstream got X-Webhook-Verified: true, X-Webhook-Key-Id: sendcloud"

        checks.run("signed webhook reaches the app", signed)

        def forged() -> str:
            before = len(upstream.seen)
            status, reply = post_webhook(listen, body, sign(body, "forger-" + secrets.token_hex(8)))
            assert status == 401, f"status {status}: {reply[:200]!r}"
            assert json.loads(reply).get("error") == "invalid_signature", reply[:200]
            assert len(upstream.seen) == before, f"the forged request reached the upstream: {upstream.seen[before:]}"
            return "401 invalid_signature, nothing reached the app"

        checks.run("forged webhook refused", forged)

        def passthrough() -> str:
            before = len(upstream.seen)
            status, reply = request(listen, "GET", APP_PROBE_PATH)
            assert status == 200, f"status {status}: {reply[:200]!r}"
            arrived = upstream.seen[before:]
            assert [seen.path for seen in arrived] == [APP_PROBE_PATH], f"upstream saw {arrived}"
            return f"GET {APP_PROBE_PATH} through the proxy port answered by the app (the app's probes)"

        checks.run("unmatched path passes through", passthrough)

        for path in ("/healthz", "/readyz"):

            def admin_probe(path: str = path) -> str:
                # Polled with a deadline: /readyz may say 503 for a moment after the proxy listens.
                deadline, outcome = time.monotonic() + 10, "no answer"
                while time.monotonic() < deadline:
                    try:
                        status, reply = request(admin, "GET", path)
                    except OSError as error:
                        outcome = f"{type(error).__name__}: {error}"
                    else:
                        if status == 200:
                            return f"200 {reply[:120].decode(errors='replace').strip()}"
                        outcome = f"status {status}: {reply[:200]!r}"
                    time.sleep(0.1)
                raise AssertionError(f"{outcome} (for 10s)")

            checks.run(f"admin {path} is 200", admin_probe)

        def metrics() -> str:
            status, reply = request(admin, "GET", "/metrics")
            assert status == 200, f"status {status}"
            lines = [line for line in reply.decode().splitlines() if line.startswith("sigwarden_requests_total{")]
            wanted = [line for line in lines if 'outcome="verified"' in line and 'route="sendcloud"' in line]
            assert wanted, f"no sigwarden_requests_total{{route=sendcloud,outcome=verified}} among {lines}"
            return wanted[0]

        checks.run("admin /metrics counts the verified webhook", metrics)

        def rotation() -> str:
            secret_dir.rotate(new_key)
            swapped = time.monotonic()
            new_body = json.dumps({"action": "integration_updated", "timestamp": int(time.time() * 1000)}).encode()
            status = 0
            while time.monotonic() - swapped < ROTATION_DEADLINE:
                status, _ = post_webhook(listen, new_body, sign(new_body, new_key))
                if status == 200:
                    break
                time.sleep(0.1)
            took = time.monotonic() - swapped
            assert status == 200, f"the new key was still refused ({status}) {ROTATION_DEADLINE}s after the swap"
            old_status, _ = post_webhook(listen, new_body, sign(new_body, old_key))
            assert old_status == 401, f"the old key still answered {old_status} after the swap"
            return f"new key accepted {took:.1f}s after the `..data` swap, old key refused"

        checks.run("secret rotation (..data swap) picked up", rotation)

        def no_secret_in_logs() -> str:
            logs = podman(args.runtime, "logs", name)
            text = logs.stdout + logs.stderr
            for value in (old_key, new_key, sign(body, old_key)):
                assert value not in text, "a secret or a signature appears in the container's log"
            return f"{len(text.splitlines())} log lines, none with a secret or a signature"

        checks.run("no secret or signature in the logs", no_secret_in_logs)

        pid = podman(args.runtime, "inspect", "--format", "{{.State.Pid}}", name, check=False).stdout.strip()
        try:
            status_lines = Path(f"/proc/{pid}/status").read_text().splitlines()
            rss = next(int(line.split()[1]) for line in status_lines if line.startswith("VmRSS:"))
            print(f"info  sigwarden's resident memory after the checks: {rss / 1024:.0f} MiB", flush=True)
        except (OSError, StopIteration, ValueError):
            pass

        def sigterm() -> str:
            stopping = time.monotonic()
            podman(args.runtime, "stop", "--time", str(SHUTDOWN_GRACE + 10), name, timeout=SHUTDOWN_GRACE + 30)
            took = time.monotonic() - stopping
            code = podman(args.runtime, "inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
            assert code == "0", f"exit status {code} after SIGTERM ({took:.1f}s)"
            return f"exit 0, {took:.1f}s after SIGTERM"

        checks.run("SIGTERM stops it cleanly", sigterm)
        return report(checks, args.runtime, name)
    finally:
        podman(args.runtime, "rm", "--force", name, check=False)
        upstream.stop()
        shutil.rmtree(work, ignore_errors=True)


def report(checks: Checks, runtime: str, name: str) -> int:
    if checks.failed:
        logs = podman(runtime, "logs", "--tail", "12", name, check=False)
        print("--- last lines of the container's log ---\n" + (logs.stdout + logs.stderr).rstrip(), flush=True)
    print(f"image-test: {checks.passed} passed, {checks.failed} failed", flush=True)
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
