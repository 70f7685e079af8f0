"""Request bodies, signatures and wrk runs."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shlex
import subprocess
from pathlib import Path
from typing import Any

from bench import tools
from sigwarden.sendcloud_events import event_body

LUA = Path(__file__).with_name("post.lua")
NOW_MS = 1_764_320_000_000  # a fixed instant: the same bytes in every run


def sendcloud_body(size: int | None = None) -> bytes:
    """A realistic Sendcloud webhook body; with `size`, a parcel list padded to exactly that many bytes."""
    body = event_body("parcel_status_changed", NOW_MS)
    if size is None or size <= len(body):
        return body
    event = json.loads(body)
    parcel, event["parcels"] = event["parcel"], []
    step = len(json.dumps(parcel)) + 2
    while len(json.dumps(event)) + step < size - 32:
        event["parcels"].append(parcel)
    event["note"] = ""
    event["note"] = "x" * (size - len(json.dumps(event)))
    data = json.dumps(event).encode()
    assert len(data) == size, (len(data), size)
    return data


def signature(body: bytes, secret: str) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def wrk_command(wrk: str, url: str, connections: int, duration: int, cpus: list[int] | None) -> list[str]:
    command = [wrk, "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(LUA), url]
    return tools.pinned(command, cpus)


def run_wrk(
    wrk: str,
    url: str,
    body_path: Path,
    sign: str | None,
    connections: int,
    duration: int,
    cpus: list[int] | None,
) -> dict[str, Any]:
    """One wrk sample: requests/s, latency percentiles (ms), error counts, and the command line."""
    command = wrk_command(wrk, url, connections, duration, cpus)
    env = {"BENCH_BODY": str(body_path), "BENCH_SIGNATURE": sign or ""}
    done = subprocess.run(
        command, env={**os.environ, **env}, capture_output=True, text=True, timeout=duration + 60, check=False
    )
    line = next((row for row in done.stdout.splitlines() if row.startswith("BENCH_RESULT ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
    raw = json.loads(line.split(" ", 1)[1])
    seconds = raw["duration_us"] / 1e6
    return {
        "requests": raw["requests"],
        "seconds": round(seconds, 3),
        "rps": round(raw["requests"] / seconds, 1) if seconds else 0.0,
        "p50_ms": raw["p50_us"] / 1000,
        "p90_ms": raw["p90_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "mean_ms": round(raw["latency_mean_us"] / 1000, 3),
        "max_ms": raw["latency_max_us"] / 1000,
        "status_errors": raw["status_errors"],
        "socket_errors": raw["connect_errors"] + raw["read_errors"] + raw["write_errors"] + raw["timeouts"],
        "command": " ".join(f"{key}={shlex.quote(value)}" for key, value in env.items() if value)
        + " "
        + shlex.join(command),
    }
