"""`make bench-profile`: where the per-request CPU of the proxy goes under wrk load.

    python -m bench.profile [--target sigwarden|mitmdump] [--scenario valid|forged|passthrough]
                            [--body 1k|64k|1m] [--seconds 10] [--tool py-spy|cprofile]

py-spy (default when installed: `pip install -e '.[bench]'`) samples the running proxy from outside
without slowing it much, and the samples are grouped by what the innermost known frame belongs to
(sigwarden's hooks, the log line, HMAC, mitmproxy's hook dispatch, its layers, HTTP/1 parsing, the
event loop and sockets). cProfile (`--tool cprofile`, sigwarden only) runs the proxy under
`python -m cProfile` and prints the functions with the most own and cumulative time; it slows every
Python call down, so read its shares, not its absolute numbers.
"""

from __future__ import annotations

import argparse
import collections
import io
import pstats
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import load, servers, tools
from bench.run import BODY_SIZES, FORGED_SECRET, PROTECTED, SECRET, UNPROTECTED, sigwarden_config
from bench.servers import REPO

# (category, pattern on a frame's file): the innermost frame that matches names the sample's category.
CATEGORIES = [
    ("request log line (logging, JSON)", re.compile(r"/logging/|sigwarden/logs\.py|/json/")),
    ("HMAC-SHA256", re.compile(r"/hmac\.py|/hashlib\.py")),
    ("sigwarden hooks and decision", re.compile(r"sigwarden/(?!layers|proxy|logs|dispatch)")),
    (
        "mitmproxy hook dispatch (addon manager)",
        re.compile(r"mitmproxy/(addonmanager|hooks|eventsequence)\.py|sigwarden/dispatch\.py"),
    ),
    ("mitmproxy Request/Response/Headers objects", re.compile(r"mitmproxy/(http|flow|coretypes/|utils/typecheck)")),
    ("HTTP/1 parsing and assembly (h11, http1)", re.compile(r"/h11/|mitmproxy/net/http/|layers/http/_http1\.py")),
    (
        "mitmproxy layers (state machines)",
        re.compile(
            r"mitmproxy/proxy/(layer|layers|tunnel|commands|events)"
            r"|sigwarden/layers\.py"
        ),
    ),
    (
        "event loop, sockets, connection handling",
        re.compile(
            r"/asyncio/|/selectors\.py|/socket\.py"
            r"|mitmproxy/proxy/server\.py"
        ),
    ),
]
RATE = 200
FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


INCLUSIVE = [
    ("in sigwarden's addon hooks (addon.py, any depth)", re.compile(r"sigwarden/addon\.py")),
    ("in mitmproxy's hook dispatch (any depth)", re.compile(r"mitmproxy/addonmanager\.py")),
    ("in the request log line (any depth)", re.compile(r"sigwarden/logs\.py")),
]


def categorise(raw: str) -> dict[str, collections.Counter[str] | int]:
    """Samples per category (innermost known frame), per inclusive group, per leaf function; and the total."""
    categories: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    leaves: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [FRAME.match(frame) for frame in stack.split(";")]
        parsed = [(match["function"], match["file"]) for match in frames if match]
        if not any("mitmproxy" in file or "sigwarden" in file for _, file in parsed):
            continue  # idle threads and start-up
        total += count
        category = "other"
        for _, file in reversed(parsed):
            found = next((name for name, pattern in CATEGORIES if pattern.search(file)), None)
            if found:
                category = found
                break
        categories[category] += count
        for name, pattern in INCLUSIVE:
            if any(pattern.search(file) for _, file in parsed):
                inclusive[name] += count
        if parsed:
            function, file = parsed[-1]
            leaves[f"{function} ({file})"] += count
    return {"categories": categories, "inclusive": inclusive, "leaves": leaves, "total": total}


def start_target(args: argparse.Namespace, folder: Path, upstream: str, cpus: list[int] | None, profile: Path | None):
    if args.target == "mitmdump":
        return servers.start_mitmdump(upstream, folder / "mitmdump", cpus)
    config, env = sigwarden_config(upstream)
    return servers.sigwarden_process("sigwarden", config, folder / "sigwarden", env, cpus, profile=profile).start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.splitlines()[0])
    parser.add_argument("--target", choices=("sigwarden", "mitmdump"), default="sigwarden")
    parser.add_argument("--scenario", choices=("valid", "forged", "passthrough"), default="valid")
    parser.add_argument("--body", choices=tuple(BODY_SIZES), default="1k")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--tool", choices=("py-spy", "cprofile"))
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--out", default=str(REPO / "bench-results"))
    args = parser.parse_args(argv)
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    tool = args.tool or ("py-spy" if Path(py_spy).exists() else "cprofile")
    if tool == "cprofile" and args.target != "sigwarden":
        parser.error("cProfile runs sigwarden only; use --tool py-spy for mitmdump")
    paths = tools.ensure()
    split = tools.cpu_split()
    proxy_cpus, load_cpus = split if split else (None, None)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    stem = f"profile-{args.target}-{args.scenario}-{args.body}"
    profile_path = out / f"{stem}.prof"
    raw_path = out / f"{stem}.pyspy.txt"
    with tempfile.TemporaryDirectory(prefix="sigwarden-profile-") as tmp:
        folder = Path(tmp)
        sink = servers.Sink()
        nginx = servers.start_nginx(paths["nginx"], folder / "nginx", load_cpus, sink.port)
        proxy = start_target(
            args, folder, f"http://127.0.0.1:{nginx.port}", proxy_cpus, profile_path if tool == "cprofile" else None
        )
        spy = None
        try:
            nginx.wait_ready()
            proxy.wait_ready()
            body = load.sendcloud_body(BODY_SIZES[args.body])
            body_path = folder / "body.json"
            body_path.write_bytes(body)
            signs = {"valid": load.signature(body, SECRET), "forged": load.signature(body, FORGED_SECRET)}
            path = UNPROTECTED if args.scenario == "passthrough" else PROTECTED
            url = f"http://127.0.0.1:{proxy.port}{path}"
            load.run_wrk(paths["wrk"], url, body_path, signs.get(args.scenario), args.connections, 1, load_cpus)
            if tool == "py-spy":
                spy = subprocess.Popen(
                    [py_spy, "record", "--pid", str(proxy.pid), "--rate", str(RATE), "--nonblocking", "--format", "raw",
                     "--duration", str(args.seconds), "--output", str(raw_path)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                )  # fmt: skip
            cpu_before = proxy.cpu()
            result = load.run_wrk(
                paths["wrk"], url, body_path, signs.get(args.scenario), args.connections, args.seconds, load_cpus
            )
            cpu = proxy.cpu() - cpu_before
            if spy is not None:
                _, errors = spy.communicate(timeout=args.seconds + 30)
                if spy.returncode != 0:
                    raise RuntimeError(f"py-spy failed: {errors.strip()}")
        finally:
            proxy.stop(timeout=60)
            nginx.stop()
            sink.close()
    requests = result["requests"]
    print(
        f"{args.target}, {args.scenario}, {args.body} body, {args.connections} connections, {args.seconds} s, "
        f"{tool}: {requests} requests ({result['rps']} req/s)"
    )
    if tool == "py-spy":
        found = categorise(raw_path.read_text())
        total = int(found["total"])  # type: ignore[call-overload]
        print(f"\nproxy CPU time: {cpu / max(requests, 1) * 1e6:.0f} µs per request; {total} samples at {RATE} Hz")
        print("\nwhere the samples fall (the innermost frame of a known kind decides):")
        for name, count in found["categories"].most_common():  # type: ignore[union-attr]
            print(f"  {count / total * 100:5.1f} %  {name}")
        print("\nshares including everything called from there:")
        for name, count in found["inclusive"].most_common():  # type: ignore[union-attr]
            print(f"  {count / total * 100:5.1f} %  {name}")
        print(f"\ntop {args.top} functions by own samples:")
        for name, count in found["leaves"].most_common(args.top):  # type: ignore[union-attr]
            print(f"  {count / total * 100:5.1f} %  {name}")
        print(f"\nraw stacks: {raw_path} (collapsed format: flamegraph.pl or speedscope read it)")
        return 0
    stats = pstats.Stats(str(profile_path))
    total_seconds = stats.total_tt  # type: ignore[attr-defined]
    print(
        f"profiled CPU: {total_seconds:.2f} s, {total_seconds / max(requests, 1) * 1e6:.0f} µs per request (inflated)"
    )
    for order in ("tottime", "cumulative"):
        text = io.StringIO()
        pstats.Stats(str(profile_path), stream=text).sort_stats(order).print_stats(args.top)
        print(f"\n--- top {args.top} by {order} ---")
        print(text.getvalue().split("\n\n", 2)[-1].rstrip())
    print(f"\nprofile: {profile_path} (python -m pstats {profile_path})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
