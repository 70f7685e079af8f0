"""Secret values read from files, the environment or the config, with expiry and re-reading.

Kubernetes swaps a mounted Secret by renaming the `..data` link; `stat` follows
the link, so a changed inode, size or mtime is how a swap is noticed.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .config import SHORT_SECRET_LENGTH, SecretSpec


@dataclass(frozen=True)
class LoadedSecret:
    spec: SecretSpec
    value: bytes | None
    problem: str | None = None  # why there is no value; never the value itself
    stamp: tuple[int, int, int, int] | None = None

    def usable_at(self, now: datetime.datetime) -> bool:
        return self.value is not None and (self.spec.expires is None or now < self.spec.expires)

    def status_at(self, now: datetime.datetime) -> str:
        if self.value is None:
            return self.problem or "unavailable"
        if self.spec.expires is not None and now >= self.spec.expires:
            return "expired"
        return "ok"


def file_stamp(path: str) -> tuple[int, int, int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_dev, info.st_ino, info.st_mtime_ns, info.st_size)


def load_secret(spec: SecretSpec, environ: Mapping[str, str] = os.environ) -> LoadedSecret:
    """Read one secret now; a missing or empty one comes back with its problem, never raises."""
    if spec.source == "value":
        raw = spec.location.encode()
        stamp = None
    elif spec.source == "env":
        text = environ.get(spec.location)
        if text is None:
            return LoadedSecret(spec, None, f"environment variable {spec.location} is not set")
        raw = text.encode()
        stamp = None
    else:
        stamp = file_stamp(spec.location)
        try:
            with open(spec.location, "rb") as file:
                raw = file.read()
        except FileNotFoundError:
            return LoadedSecret(spec, None, f"file {spec.location} does not exist", stamp)
        except OSError as error:
            return LoadedSecret(spec, None, f"file {spec.location} cannot be read: {error.strerror}", stamp)
    value = raw.strip()
    if not value:
        return LoadedSecret(spec, None, f"{spec.describe()} is empty", stamp)
    return LoadedSecret(spec, value, None, stamp)


class SecretStore:
    """The current value of every configured secret; replaced entries, never mutated ones."""

    def __init__(self, specs: Mapping[str, SecretSpec], environ: Mapping[str, str] = os.environ):
        self.environ = environ
        self.secrets: dict[str, LoadedSecret] = {name: load_secret(spec, environ) for name, spec in specs.items()}

    def refresh(self, force: bool = False) -> list[str]:
        """Re-read the files whose stat changed or that were unreadable (all with `force`); the names that changed."""
        changed = []
        for name, loaded in list(self.secrets.items()):
            if loaded.spec.source != "file":
                continue
            stamp = file_stamp(loaded.spec.location)
            if not force and stamp is not None and stamp == loaded.stamp and loaded.value is not None:
                continue
            fresh = load_secret(loaded.spec, self.environ)
            if fresh.value != loaded.value or fresh.problem != loaded.problem:
                changed.append(name)
            self.secrets[name] = fresh
        return changed

    def usable(self, names: Iterable[str], now: datetime.datetime) -> list[tuple[str, bytes]]:
        """(name, value) of each named secret that has a value and has not expired."""
        found = []
        for name in names:
            loaded = self.secrets.get(name)
            if loaded is not None and loaded.usable_at(now) and loaded.value is not None:
                found.append((name, loaded.value))
        return found

    def problems(self, now: datetime.datetime) -> dict[str, str]:
        """name → why it is unusable, for each unusable secret."""
        return {name: status for name, loaded in self.secrets.items() if (status := loaded.status_at(now)) != "ok"}

    def warnings(self) -> list[str]:
        return [
            f"secrets.{name}: shorter than {SHORT_SECRET_LENGTH} characters; Sendcloud's signature keys are at least 16"
            for name, loaded in self.secrets.items()
            if loaded.value is not None and len(loaded.value) < SHORT_SECRET_LENGTH
        ]
