"""`make bench-profile`: cProfile of `sigwarden run` under wrk load; what dominates per-request CPU.

    python -m bench.profile [--scenario valid|forged|passthrough] [--body 1k|64k|1m] [--seconds 10]

Starts nginx and `python -m cProfile -o FILE -m sigwarden run`, loads it with wrk (10 connections),
stops it with SIGTERM (a clean shutdown writes the profile), then prints the functions with the most
own time and the most cumulative time, per request. cProfile slows every Python call down, so the
absolute numbers are inflated; the shares are what to read.
"""

from __future__ import annotations

import argparse
import io
import pstats
import sys
import tempfile
from pathlib import Path

from bench import load, servers, tools
from bench.run import BODY_SIZES, FORGED_SECRET, PROTECTED, SECRET, UNPROTECTED, sigwarden_config
from bench.servers import REPO


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=("valid", "forged", "passthrough"), default="valid")
    parser.add_argument("--body", choices=tuple(BODY_SIZES), default="1k")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--out", default=str(REPO / "bench-results"))
    args = parser.parse_args(argv)
    paths = tools.ensure()
    split = tools.cpu_split()
    proxy_cpus, load_cpus = split if split else (None, None)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    profile_path = out / f"profile-{args.scenario}-{args.body}.prof"
    with tempfile.TemporaryDirectory(prefix="sigwarden-profile-") as tmp:
        folder = Path(tmp)
        sink = servers.Sink()
        nginx = servers.start_nginx(paths["nginx"], folder / "nginx", load_cpus, sink.port)
        config, env = sigwarden_config(f"http://127.0.0.1:{nginx.port}")
        profiled = servers.sigwarden_process(
            "sigwarden", config, folder / "sigwarden", env, proxy_cpus, profile=profile_path.resolve()
        ).start()
        try:
            nginx.wait_ready()
            profiled.wait_ready()
            body = load.sendcloud_body(BODY_SIZES[args.body])
            body_path = folder / "body.json"
            body_path.write_bytes(body)
            sign = {"valid": load.signature(body, SECRET), "forged": load.signature(body, FORGED_SECRET)}.get(
                args.scenario
            )
            path = UNPROTECTED if args.scenario == "passthrough" else PROTECTED
            result = load.run_wrk(
                paths["wrk"], f"http://127.0.0.1:{profiled.port}{path}", body_path, sign, args.connections,
                args.seconds, load_cpus,
            )  # fmt: skip
        finally:
            profiled.stop(timeout=60)
            nginx.stop()
            sink.close()
    requests = result["requests"]
    print(f"{args.scenario}, {args.body} body, {args.connections} connections, {args.seconds} s under cProfile: "
          f"{requests} requests ({result['rps']} req/s)")  # fmt: skip
    stats = pstats.Stats(str(profile_path))
    total = stats.total_tt  # type: ignore[attr-defined]
    print(f"profiled CPU: {total:.2f} s, {total / max(requests, 1) * 1e6:.0f} µs per request (inflated by cProfile)")
    for order in ("tottime", "cumulative"):
        text = io.StringIO()
        pstats.Stats(str(profile_path), stream=text).sort_stats(order).print_stats(args.top)
        print(f"\n--- top {args.top} by {order} ---")
        print(text.getvalue().split("\n\n", 2)[-1].rstrip())
    print(f"\nprofile: {profile_path} (open with: python -m pstats {profile_path}, or snakeviz)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
