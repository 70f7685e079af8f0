from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Sigwarden, Upstream, base_config  # noqa: E402


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server = Upstream().start()
    yield server
    server.stop()


@pytest.fixture
def start_sigwarden(tmp_path: Path, upstream: Upstream):
    """Start the real `sigwarden run` with the base config plus overrides; stopped after the test."""
    started: list[Sigwarden] = []

    def start(env: dict[str, str] | None = None, wait: bool = True, **overrides) -> Sigwarden:
        folder = tmp_path / f"sigwarden{len(started)}"
        folder.mkdir()
        process = Sigwarden(folder, base_config(upstream.url, **overrides), env).start(wait=wait)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def sigwarden(start_sigwarden) -> Sigwarden:
    return start_sigwarden()


@pytest.fixture(scope="module")
def module_upstream() -> Iterator[Upstream]:
    """One upstream for a whole test module (start-up is paid once); cleared before each test."""
    server = Upstream().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def module_sigwarden(tmp_path_factory, module_upstream: Upstream) -> Iterator[Sigwarden]:
    """One `sigwarden run` with the base config for a whole test module."""
    process = Sigwarden(tmp_path_factory.mktemp("sigwarden"), base_config(module_upstream.url)).start()
    yield process
    process.stop()


@pytest.fixture
def shared(module_sigwarden: Sigwarden, module_upstream: Upstream) -> tuple[Sigwarden, Upstream]:
    """(sigwarden, upstream) shared by the module, with the upstream's record cleared."""
    module_upstream.received.clear()
    module_upstream.status, module_upstream.delay = 200, 0.0
    return module_sigwarden, module_upstream
