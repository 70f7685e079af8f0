"""The processes under test, on loopback: nginx (the fast upstream), a byte-counting sink, mitmdump, sigwarden."""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench import tools

MIB = 1024 * 1024
REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, deadline: float = 20.0, process: subprocess.Popen | None = None) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {deadline}s")


def rss_bytes(pid: int) -> int:
    """Resident memory of a process now (VmRSS)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_seconds(pid: int) -> float:
    """CPU time a process has used so far, all its threads, in seconds (from the scheduler, in ns)."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as schedstat:
                total += int(schedstat.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # a thread that just ended
    return total / 1e9


class RssSampler:
    """Samples a process's RSS every few milliseconds in a thread: before, peak and after."""

    def __init__(self, pid: int, interval: float = 0.005):
        self.pid, self.interval = pid, interval
        self.before = self.peak = self.after = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes(self.pid))
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self.before = self.peak = rss_bytes(self.pid)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.after = rss_bytes(self.pid)
        self.peak = max(self.peak, self.after)

    def summary(self) -> dict[str, float]:
        return {
            "rss_before_mb": round(self.before / MIB, 2),
            "rss_peak_mb": round(self.peak / MIB, 2),
            "rss_after_mb": round(self.after / MIB, 2),
            "rss_growth_mb": round((self.after - self.before) / MIB, 2),
            "rss_peak_growth_mb": round((self.peak - self.before) / MIB, 2),
        }


@dataclass
class Process:
    """A started server: its command line (as run), its log, and how to stop it."""

    name: str
    command: list[str]
    port: int
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    popen: subprocess.Popen | None = None

    def start(self) -> Process:
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.popen = subprocess.Popen(
            self.command,
            env={**os.environ, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=REPO,
        )
        log.close()
        return self

    def wait_ready(self, deadline: float = 20.0) -> None:
        wait_for_port(self.port, deadline, self.popen)

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def rss(self) -> int:
        return rss_bytes(self.pid)

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def shell_command(self) -> str:
        env = " ".join(f"{key}={shlex.quote(value)}" for key, value in self.env.items())
        return (env + " " if env else "") + shlex.join(self.command)

    def stop(self, timeout: float = 15.0) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()


NGINX_CONF = """\
daemon off;
master_process off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    sendfile on;
    client_max_body_size 2m;
    client_body_buffer_size 2m;
    server {{
        listen 127.0.0.1:{port};
        # Every path: 200 with a small JSON body (request bodies up to 2 MiB are read and discarded).
        location / {{
            default_type application/json;
            return 200 '{{"ok": true}}';
        }}
        # Large downloads: files of the bench's own data folder.
        location /download/ {{
            alias {prefix}/files/;
        }}
        # Large uploads: streamed on to a sink that reads and counts every byte before it answers.
        location /upload {{
            client_max_body_size 0;
            proxy_request_buffering off;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://127.0.0.1:{sink_port};
        }}
    }}
}}
"""


def start_nginx(nginx: str, prefix: Path, cpus: list[int] | None, sink_port: int) -> Process:
    """nginx in the foreground with its own prefix and config under `prefix` (no root paths)."""
    prefix.mkdir(parents=True, exist_ok=True)
    (prefix / "files").mkdir(exist_ok=True)
    port = free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(NGINX_CONF.format(prefix=prefix, port=port, sink_port=sink_port))
    command = tools.pinned([nginx, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")], cpus)
    return Process("nginx", command, port, prefix / "nginx.out").start()


def sparse_file(path: Path, size: int) -> Path:
    """A file of `size` zero bytes that takes no disk space (nginx sends it with sendfile)."""
    with open(path, "wb") as file:
        file.truncate(size)
    return path


class Sink:
    """An HTTP/1.1 server that reads each request body to the end, counts it, then answers 200."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = int(self.sock.getsockname()[1])
        self.received: list[int] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as stream:
            while True:
                head = []
                while True:
                    line = stream.readline(65536)
                    if not line:
                        return
                    if line in (b"\r\n", b"\n"):
                        break
                    head.append(line)
                headers = {}
                for line in head[1:]:
                    name, _, value = line.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                if headers.get("transfer-encoding", "").lower() == "chunked":
                    size = self._read_chunked(stream)
                else:
                    size = self._read_exactly(stream, int(headers.get("content-length") or 0))
                self.received.append(size)
                body = b'{"ok": true}'
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                    % (len(body), body)
                )

    @staticmethod
    def _read_exactly(stream: Any, length: int) -> int:
        size = 0
        while size < length:
            chunk = stream.read(min(length - size, MIB))
            if not chunk:
                break
            size += len(chunk)
        return size

    @classmethod
    def _read_chunked(cls, stream: Any) -> int:
        size = 0
        while True:
            length = int(stream.readline().split(b";")[0].strip() or b"0", 16)
            if length == 0:
                while stream.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return size
            size += cls._read_exactly(stream, length)
            stream.readline()

    def close(self) -> None:
        self._closed = True
        self.sock.close()


def start_mitmdump(upstream: str, folder: Path, cpus: list[int] | None) -> Process:
    """Plain mitmdump as a reverse proxy, no addon of ours: the baseline. Quiet, same options as sigwarden's."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    mitmdump = str(Path(sys.executable).with_name("mitmdump"))
    command = [
        mitmdump,
        "-q",
        "--mode",
        f"reverse:{upstream}@127.0.0.1:{port}",
        "--set",
        "connection_strategy=lazy",
        "--set",
        "keep_host_header=true",
        "--set",
        "flow_detail=0",
        "--set",
        f"confdir={folder / 'confdir'}",
    ]
    return Process("mitmdump", tools.pinned(command, cpus), port, folder / "mitmdump.log").start()


def sigwarden_process(
    name: str,
    config: dict[str, Any],
    folder: Path,
    env: dict[str, str],
    cpus: list[int] | None,
    profile: Path | None = None,
) -> Process:
    """The real `sigwarden run` with `config` written to `folder` (not started); its log (stderr) goes there.
    With `profile`, it runs under cProfile, which writes that file at a clean shutdown."""
    folder.mkdir(parents=True, exist_ok=True)
    config_path = folder / "config.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    port = int(str(config["listen"]).rsplit(":", 1)[1])
    profiler = ["-m", "cProfile", "-o", str(profile)] if profile else []
    command = [sys.executable, *profiler, "-m", "sigwarden", "run", "-c", str(config_path)]
    return Process(name, tools.pinned(command, cpus), port, folder / "sigwarden.log", env=env)


def start_sigwarden(
    name: str, config: dict[str, Any], folder: Path, env: dict[str, str], cpus: list[int] | None
) -> Process:
    return sigwarden_process(name, config, folder, env, cpus).start()
