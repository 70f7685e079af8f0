"""The system tools the benchmark drives: nginx and wrk (Debian packages), taskset (util-linux)."""

from __future__ import annotations

import os
import shutil
import subprocess

# command → the Debian package that provides it. `nginx` is the real server on Debian 12
# (`nginx-light` there is only a transitional package that pulls it in).
PACKAGES = {"nginx": "nginx", "wrk": "wrk"}
_SBIN = ("/usr/sbin", "/sbin", "/usr/local/sbin")


class ToolsMissing(RuntimeError):
    pass


def find(command: str) -> str | None:
    """The path of `command`, looking in the sbin folders too (nginx lives in /usr/sbin)."""
    found = shutil.which(command)
    if found:
        return found
    for folder in _SBIN:
        candidate = os.path.join(folder, command)
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def missing() -> list[str]:
    return [command for command in PACKAGES if find(command) is None]


def ensure(install: bool = True) -> dict[str, str]:
    """{command: path} for nginx and wrk, installing them with apt-get when missing and allowed."""
    absent = missing()
    if absent and install:
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            raise ToolsMissing(
                f"missing {', '.join(absent)}: install the Debian packages "
                f"{' '.join(PACKAGES[name] for name in absent)} (needs root and apt-get)"
            )
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *(PACKAGES[name] for name in absent)],
            check=True,
            env=env,
            stdout=subprocess.DEVNULL,
        )
        absent = missing()
    if absent:
        raise ToolsMissing(f"missing {', '.join(absent)} (Debian packages: {' '.join(PACKAGES[n] for n in absent)})")
    return {command: find(command) or command for command in PACKAGES}


def version(command: list[str]) -> str:
    """The first line a tool prints about its version (nginx prints it on stderr)."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def cpu_split() -> tuple[list[int], list[int]] | None:
    """(CPUs for the proxy under test, CPUs for the load generator and upstream); None on one CPU."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2 or not shutil.which("taskset"):
        return None
    return cpus[-1:], cpus[:-1]


def pinned(command: list[str], cpus: list[int] | None) -> list[str]:
    if not cpus:
        return command
    return ["taskset", "-c", ",".join(str(cpu) for cpu in cpus), *command]
