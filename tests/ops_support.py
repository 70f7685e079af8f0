"""Helpers for the operations tests: the admin port, Kubernetes-style mounted volumes, signals."""

from __future__ import annotations

import http.client
import json
import os
import time
from pathlib import Path
from typing import Any

from harness import wait_until


def admin_get(port: int, path: str, timeout: float = 5.0) -> tuple[int, str, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type") or "", response.read()
    finally:
        connection.close()


def readiness(port: int) -> tuple[int, dict[str, Any]]:
    status, _, body = admin_get(port, "/readyz")
    return status, json.loads(body)


def metric_value(port: int, name: str, **labels: str) -> float | None:
    """The value of one sample of the admin port's /metrics, or None when it is absent."""
    _, _, body = admin_get(port, "/metrics")
    wanted = {f'{key}="{value}"' for key, value in labels.items()}
    for line in body.decode().splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        series, _, value = line.rpartition(" ")
        metric, _, label_text = series.partition("{")
        if metric != name:
            continue
        present = set(label_text.rstrip("}").split(",")) if label_text else set()
        if wanted <= present:
            return float(value)
    return None


class MountedVolume:
    """A folder laid out the way the kubelet mounts a Secret or ConfigMap.

    `name -> ..data/name`, `..data -> ..<timestamp>`; an update writes a new
    timestamped folder and renames a new `..data` link over the old one.
    """

    def __init__(self, root: Path, files: dict[str, str]):
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.generation = 0
        self.update(files)
        for name in files:
            (self.root / name).symlink_to(Path("..data") / name)

    def path(self, name: str) -> str:
        return str(self.root / name)

    def update(self, files: dict[str, str]) -> None:
        self.generation += 1
        folder = self.root / f"..2026_12_03_00_00_{self.generation:02d}.{os.getpid()}"
        folder.mkdir()
        for name, content in files.items():
            (folder / name).write_text(content)
        temporary = self.root / "..data_tmp"
        temporary.symlink_to(folder.name)
        old = (self.root / "..data").resolve() if (self.root / "..data").is_symlink() else None
        os.rename(temporary, self.root / "..data")
        if old is not None:
            for child in old.iterdir():
                child.unlink()
            old.rmdir()

    def remove(self) -> None:
        """The kubelet's view of a Secret that was deleted: the links dangle."""
        target = (self.root / "..data").resolve()
        (self.root / "..data").unlink()
        for child in target.iterdir():
            child.unlink()
        target.rmdir()


def wait_for_log(process, event: str, deadline: float = 10.0, **fields: Any) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        for line in process.log_lines():
            if line.get("event") == event and all(line.get(key) == value for key, value in fields.items()):
                return line
        return None

    return wait_until(find, deadline)


def elapsed_until(condition, deadline: float = 10.0, interval: float = 0.02) -> float:
    """Seconds until `condition()` is true (polled), or TimeoutError."""
    start = time.monotonic()
    wait_until(condition, deadline, interval)
    return time.monotonic() - start


def request_lines(process, count: int, deadline: float = 10.0) -> list[dict[str, Any]]:
    """The process's `request` log lines once there are at least `count` (they follow the answer)."""

    def enough() -> list[dict[str, Any]] | None:
        lines = [line for line in process.log_lines() if line.get("event") == "request"]
        return lines if len(lines) >= count else None

    return wait_until(enough, deadline)
