"""`make bench`: sigwarden against plain mitmdump and the bare upstream, interleaved, in one run.

Every scenario is a cell (a target and a number of connections). Each round runs every cell once,
for a fixed duration, in a rotated order, so that drift of the machine (other load, thermal, caches)
falls on every cell alike; ratios are taken per round between cells of the same round.
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench import load, memory, report, servers, tools
from bench.servers import MIB, REPO, Process

SECRET = "bench-secret-0123456789abcdef"  # noqa: S105 - a benchmark's throwaway key
FORGED_SECRET = "not-the-secret-0123456789"  # noqa: S105
PROTECTED = "/webhooks/sendcloud"
UNPROTECTED = "/shop/api/orders"
BODY_SIZES = {"1k": None, "64k": 64 * 1024, "1m": MIB}


@dataclass(frozen=True)
class Settings:
    quick: bool
    rounds: int
    duration: int
    warmup: int
    soak_low: int
    soak_high: int
    soak_deadline: float
    flood_clients: int
    flood_declared: int
    flood_stream: int
    transfer_bytes: int

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Settings:
        if args.quick:
            base = cls(True, 1, 1, 0, 1_000, 2_000, 15.0, 20, 50 * MIB, 1 * MIB, 20 * MIB)
        else:
            base = cls(False, 3, 5, 1, 50_000, 100_000, 180.0, 20, 50 * MIB, 4 * MIB, 200 * MIB)
        overrides = {"rounds": args.rounds, "duration": args.duration}
        return cls(**{**asdict(base), **{key: value for key, value in overrides.items() if value}})


@dataclass(frozen=True)
class Cell:
    key: str
    scenario: str  # direct | baseline | valid | forged | passthrough (with a suffix for scaling cells)
    label: str
    server: str  # name of the process answering
    connections: int
    path: str
    body: str  # key of BODY_SIZES
    signed: str | None  # "valid", "forged" or None (no signature header)
    refused: bool  # every answer is expected to be a refusal (4xx)
    baseline: str | None  # cell whose requests/s this one is compared with
    group: str  # main | scaling
    routes: int = 1
    secrets: int = 1


def make_cells() -> list[Cell]:
    cells = []
    main = (
        ("direct", "direct to nginx", "nginx", PROTECTED, "valid", False),
        ("baseline", "plain mitmdump (baseline)", "mitmdump", PROTECTED, "valid", False),
        ("valid", "sigwarden, valid signature", "sigwarden", PROTECTED, "valid", False),
        ("forged", "sigwarden, forged signature", "sigwarden", PROTECTED, "forged", True),
        ("passthrough", "sigwarden, unprotected path", "sigwarden", UNPROTECTED, None, False),
    )
    for connections in (1, 10):
        for scenario, label, server, path, signed, refused in main:
            baseline = None if scenario == "baseline" else f"baseline-c{connections}"
            cells.append(
                Cell(
                    f"{scenario}-c{connections}",
                    scenario,
                    label,
                    server,
                    connections,
                    path,
                    "1k",
                    signed,
                    refused,
                    baseline,
                    "main",
                )  # fmt: skip
            )
    for body in ("64k", "1m"):
        cells.append(
            Cell(
                f"baseline-{body}-c10",
                "baseline",
                f"plain mitmdump, {body} body",
                "mitmdump",
                10,
                PROTECTED,
                body,
                "valid",
                False,
                None,
                "scaling",
            )  # fmt: skip
        )
        cells.append(
            Cell(
                f"valid-{body}-c10",
                "valid",
                f"sigwarden valid, {body} body",
                "sigwarden-bodies",
                10,
                PROTECTED,
                body,
                "valid",
                False,
                f"baseline-{body}-c10",
                "scaling",
            )  # fmt: skip
        )
    cells.append(
        Cell(
            "valid-50routes-c10",
            "valid",
            "sigwarden valid, 50 routes",
            "sigwarden-routes",
            10,
            PROTECTED,
            "1k",
            "valid",
            False,
            "baseline-c10",
            "scaling",
            routes=50,
        )  # fmt: skip
    )
    cells.append(
        Cell(
            "valid-5secrets-c10",
            "valid",
            "sigwarden valid, 5 secrets",
            "sigwarden-secrets",
            10,
            PROTECTED,
            "1k",
            "valid",
            False,
            "baseline-c10",
            "scaling",
            secrets=5,
        )  # fmt: skip
    )
    return cells


def sigwarden_config(upstream: str, routes: int = 1, secrets: int = 1) -> tuple[dict[str, Any], dict[str, str]]:
    """A config with `routes` routes (the one hit last, so every request scans them all) and `secrets`
    secrets on the protected route (the matching one last; every one is tried anyway), and its env."""
    names = [f"sendcloud-{index}" for index in range(secrets - 1)] + ["sendcloud"]
    env = {f"BENCH_SECRET_{index}": f"bench-old-secret-{index:02d}-0123456789" for index in range(secrets - 1)}
    env[f"BENCH_SECRET_{secrets - 1}"] = SECRET
    route_list: list[dict[str, Any]] = []
    for index in range(routes - 1):
        kind = index % 3
        if kind == 0:
            route_list.append({"name": f"provider-{index}", "path": [f"/webhooks/provider-{index}"]})
        elif kind == 1:
            route_list.append({"name": f"prefix-{index}", "path_prefix": f"/hooks/p{index}/"})
        else:
            route_list.append({"name": f"query-{index}", "path": "/index.php", "query": {"route": f"hook/{index}"}})
        route_list[-1]["secrets"] = [names[-1]]
    route_list.append(
        {"name": "sendcloud", "path": [PROTECTED, "/index.php" + PROTECTED], "secrets": names, "max_body": "1MiB"}
    )
    config = {
        "listen": f"127.0.0.1:{servers.free_port()}",
        "upstream": upstream,
        "admin_listen": f"127.0.0.1:{servers.free_port()}",
        "secrets": {name: {"env": f"BENCH_SECRET_{index}"} for index, name in enumerate(names)},
        "routes": route_list,
        "log_format": "json",
        "log_level": "info",
    }
    return config, env


def probe(port: int, cell: Cell, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("POST", cell.path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def aggregate(cell: Cell, samples: list[dict[str, Any]], by_key: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    rps = [sample["rps"] for sample in samples]
    row: dict[str, Any] = {
        **asdict(cell),
        "rounds": len(samples),
        "rps": _median(rps),
        "rps_min": min(rps) if rps else None,
        "rps_max": max(rps) if rps else None,
        "p50_ms": _median([sample["p50_ms"] for sample in samples]),
        "p99_ms": _median([sample["p99_ms"] for sample in samples]),
        "cpu_us_per_request": _median([s["cpu_us_per_request"] for s in samples if s["cpu_us_per_request"]]),
        "requests": sum(sample["requests"] for sample in samples),
        "status_errors": sum(sample["status_errors"] for sample in samples),
        "socket_errors": sum(sample["socket_errors"] for sample in samples),
        "rss_before_mb": samples[0].get("rss_before_mb") if samples else None,
        "rss_after_mb": samples[-1].get("rss_after_mb") if samples else None,
        "command": samples[0]["command"] if samples else None,
        "samples": samples,
    }
    if cell.baseline:
        base = {sample["round"]: sample["rps"] for sample in by_key.get(cell.baseline, [])}
        paired = [sample["rps"] / base[sample["round"]] for sample in samples if base.get(sample["round"])]
        row["ratio"] = round(statistics.median(paired), 3) if paired else None
        row["ratios"] = [round(value, 3) for value in paired]
        # The same comparison in CPU time per request of the proxy: what other load on the machine disturbs least.
        base_cpu = {sample["round"]: sample["cpu_us_per_request"] for sample in by_key.get(cell.baseline, [])}
        cpu_paired = [
            base_cpu[sample["round"]] / sample["cpu_us_per_request"]
            for sample in samples
            if base_cpu.get(sample["round"]) and sample["cpu_us_per_request"]
        ]
        row["cpu_ratio"] = round(statistics.median(cpu_paired), 3) if cpu_paired else None
    return row


def soak_summary(points: list[dict[str, Any]], low: int, high: int) -> dict[str, Any]:
    """RSS of the main sigwarden once it had served `low` requests and once it had served `high`."""
    first_low = next((point for point in points if point["served"] >= low), None)
    first_high = next((point for point in points if point["served"] >= high), None)
    summary: dict[str, Any] = {"low_requests": low, "high_requests": high, "points": points}
    if first_low and first_high:
        growth = (first_high["rss_mb"] - first_low["rss_mb"]) / first_low["rss_mb"] * 100
        summary.update(
            served_at_low=first_low["served"],
            rss_at_low_mb=first_low["rss_mb"],
            served_at_high=first_high["served"],
            rss_at_high_mb=first_high["rss_mb"],
            growth_percent=round(growth, 2),
            max_rss_mb=max(point["rss_mb"] for point in points),
        )
    return summary


def log_outcomes(path: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    pattern = re.compile(r'"outcome": "([a-z_]+)"')
    with open(path, errors="replace") as log:
        for line in log:
            match = pattern.search(line)
            if match:
                counts[match.group(1)] = counts.get(match.group(1), 0) + 1
    return counts


def evaluate(cells: dict[str, dict[str, Any]], soak: dict[str, Any], mem: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of issue 6 with the measured value and whether this run met it."""
    targets = []

    def target(
        name: str, value: float | None, limit: float, higher_is_better: bool, unit: str = "", **extra: Any
    ) -> None:
        met = None if value is None else (value >= limit if higher_is_better else value <= limit)
        targets.append(
            {"target": name, "value": value, "limit": limit, "unit": unit, "higher_is_better": higher_is_better,
             "met": met, **extra}
        )  # fmt: skip

    for scenario, limit in (("valid", 1.7), ("forged", 2.0), ("passthrough", 1.7)):
        for connections in (1, 10):
            cell = cells.get(f"{scenario}-c{connections}", {})
            target(f"{scenario} req/s vs baseline, {connections} conn", cell.get("ratio"), limit, True, "×",
                   cpu_ratio=cell.get("cpu_ratio"))  # fmt: skip
    base_p99 = cells.get("baseline-c10", {}).get("p99_ms")
    for scenario in ("valid", "forged", "passthrough"):
        p99 = cells.get(f"{scenario}-c10", {}).get("p99_ms")
        ratio = round(p99 / base_p99, 3) if p99 is not None and base_p99 else None
        target(f"{scenario} p99 at 10 conn / baseline p99", ratio, 1.0, False, "×")
    target("RSS growth 50k→100k requests", soak.get("growth_percent"), 5.0, False, "%")
    target("RSS at 100k requests", soak.get("rss_at_high_mb"), 100.0, False, "MB")
    flood = mem.get("oversized", {})
    target("20×50 MiB declared: RSS growth (peak)", flood.get("rss_peak_growth_mb"), 20.0, False, "MB")
    target("20×50 MiB declared: RSS peak", flood.get("rss_peak_mb"), 130.0, False, "MB")
    target("20×50 MiB declared: slowest JSON 413", flood.get("answer_seconds_max"), 1.0, False, "s")
    targets[-1]["met"] = targets[-1]["met"] and bool(flood.get("all_json_413"))
    for name in ("upload", "download"):
        growth = mem.get(name, {}).get("rss_peak_growth_mb")
        target(f"{mem.get(name, {}).get('bytes', 0) // MIB} MiB {name} unprotected: RSS growth (peak)", growth, 20.0,
               False, "MB")  # fmt: skip
    return targets


def check_cell(cell: Cell, sample: dict[str, Any]) -> list[str]:
    problems = []
    if cell.refused and sample["status_errors"] != sample["requests"]:
        problems.append(f"{cell.key}: {sample['requests'] - sample['status_errors']} answers were not refusals")
    if not cell.refused and sample["status_errors"]:
        problems.append(f"{cell.key}: {sample['status_errors']} answers were 4xx/5xx")
    if sample["socket_errors"]:
        problems.append(f"{cell.key}: {sample['socket_errors']} socket errors or timeouts")
    if not sample["requests"]:
        problems.append(f"{cell.key}: no request completed")
    return problems


def git_commit() -> str:
    try:
        done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True)
    except OSError:
        return "unknown"
    return done.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), model)
    except OSError:
        pass
    return {
        "cpu": model,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "loadavg_start": os.getloadavg(),
    }


@dataclass
class Bench:
    settings: Settings
    tool_paths: dict[str, str]
    proxy_cpus: list[int] | None
    load_cpus: list[int] | None
    folder: Path
    processes: dict[str, Process] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    say: Any = print

    def start(self) -> servers.Sink:
        sink = servers.Sink()
        nginx = servers.start_nginx(self.tool_paths["nginx"], self.folder / "nginx", self.load_cpus, sink.port)
        self.processes["nginx"] = nginx
        servers.sparse_file(self.folder / "nginx" / "files" / "big.bin", self.settings.transfer_bytes)
        upstream = f"http://127.0.0.1:{nginx.port}"
        self.processes["mitmdump"] = servers.start_mitmdump(upstream, self.folder / "mitmdump", self.proxy_cpus)
        for name, routes, secrets in (
            ("sigwarden", 1, 1),
            ("sigwarden-bodies", 1, 1),
            ("sigwarden-routes", 50, 1),
            ("sigwarden-secrets", 1, 5),
        ):
            config, env = sigwarden_config(upstream, routes, secrets)
            self.processes[name] = servers.start_sigwarden(name, config, self.folder / name, env, self.proxy_cpus)
        for process in self.processes.values():
            process.wait_ready()
        return sink

    def stop(self) -> None:
        for process in self.processes.values():
            process.stop()

    def sample(self, cell: Cell, bodies: dict[str, Path], signatures: dict[str, dict[str, str]], duration: int,
               round_index: int) -> dict[str, Any]:  # fmt: skip
        process = self.processes[cell.server]
        is_proxy = cell.server != "nginx"
        before = process.rss() if is_proxy else None
        cpu_before = process.cpu()
        sign = signatures[cell.body].get(cell.signed) if cell.signed else None
        result = load.run_wrk(
            self.tool_paths["wrk"],
            f"http://127.0.0.1:{process.port}{cell.path}",
            bodies[cell.body],
            sign,
            cell.connections,
            duration,
            self.load_cpus,
        )
        result["round"] = round_index
        cpu = process.cpu() - cpu_before
        result["cpu_seconds"] = round(cpu, 4)
        result["cpu_us_per_request"] = round(cpu / result["requests"] * 1e6, 1) if result["requests"] else None
        if is_proxy:
            result["rss_before_mb"] = round((before or 0) / MIB, 2)
            result["rss_after_mb"] = round(process.rss() / MIB, 2)
        return result

    def run(self) -> dict[str, Any]:
        settings = self.settings
        started = time.monotonic()
        at_start = machine()
        cells = make_cells()
        bodies, signatures = {}, {}
        for key, size in BODY_SIZES.items():
            body = load.sendcloud_body(size)
            bodies[key] = self.folder / f"body-{key}.json"
            bodies[key].write_bytes(body)
            signatures[key] = {"valid": load.signature(body, SECRET), "forged": load.signature(body, FORGED_SECRET)}
        sink = self.start()
        try:
            self.say(f"started {', '.join(self.processes)} in {time.monotonic() - started:.1f}s")
            for cell in cells:  # every target answers as expected before any load
                port = self.processes[cell.server].port
                headers = {"Content-Type": "application/json"}
                if cell.signed:
                    headers["Sendcloud-Signature"] = signatures[cell.body][cell.signed]
                status, answer = probe(port, cell, bodies[cell.body].read_bytes(), headers)
                if cell.refused != (status == 401) or (cell.refused and b"invalid_signature" not in answer):
                    raise RuntimeError(f"{cell.key}: probe answered {status} {answer[:200]!r}")
            if settings.warmup:
                warmed = set()
                for cell in cells:
                    if cell.server not in warmed:
                        warmed.add(cell.server)
                        self.sample(cell, bodies, signatures, settings.warmup, -1)
            samples: dict[str, list[dict[str, Any]]] = {cell.key: [] for cell in cells}
            served = 0
            soak_points: list[dict[str, Any]] = []
            for round_index in range(settings.rounds):
                shift = round_index * 7 % len(cells)
                for cell in cells[shift:] + cells[:shift]:
                    result = self.sample(cell, bodies, signatures, settings.duration, round_index)
                    samples[cell.key].append(result)
                    self.problems += check_cell(cell, result)
                    if cell.server == "sigwarden":
                        served += result["requests"]
                        soak_points.append({"served": served, "rss_mb": result["rss_after_mb"], "cell": cell.key})
                    self.say(
                        f"round {round_index + 1}/{settings.rounds} {cell.key:22} {result['rps']:9.1f} req/s "
                        f"p50 {result['p50_ms']:7.2f} ms p99 {result['p99_ms']:7.2f} ms "
                        f"CPU {result['cpu_us_per_request'] or 0:7.1f} µs/req"
                    )
            valid = next(cell for cell in cells if cell.key == "valid-c10")
            deadline = time.monotonic() + settings.soak_deadline
            while served < settings.soak_high and time.monotonic() < deadline:
                result = self.sample(valid, bodies, signatures, settings.duration, -2)
                served += result["requests"]
                soak_points.append({"served": served, "rss_mb": result["rss_after_mb"], "cell": "soak"})
                self.say(f"soak: {served} requests served, RSS {result['rss_after_mb']} MB")
            soak = soak_summary(soak_points, settings.soak_low, settings.soak_high)
            main = self.processes["sigwarden"]
            mem = {
                "oversized": memory.oversized_flood(
                    main.port,
                    main.pid,
                    PROTECTED,
                    signatures["1k"]["valid"],
                    settings.flood_clients,
                    settings.flood_declared,
                    settings.flood_stream,
                ),
                "upload": memory.upload(main.port, main.pid, "/upload", settings.transfer_bytes, sink.received),
                "download": memory.download(main.port, main.pid, "/download/big.bin", settings.transfer_bytes),
            }
            self.say(f"memory: {json.dumps({key: _short(value) for key, value in mem.items()})}")
        finally:
            self.stop()
            sink.close()
        outcomes = log_outcomes(self.processes["sigwarden"].log_path)
        aggregated = {cell.key: aggregate(cell, samples[cell.key], samples) for cell in cells}
        return {
            "meta": {
                "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                "commit": git_commit(),
                "machine": {**at_start, "loadavg_end": os.getloadavg()},
                "tools": {
                    "nginx": tools.version([self.tool_paths["nginx"], "-v"]),
                    "wrk": tools.version([self.tool_paths["wrk"], "-v"]),
                    "mitmproxy": _mitmproxy_version(),
                },
                "pinning": (
                    {"proxies": self.proxy_cpus, "wrk_nginx_and_driver": self.load_cpus} if self.proxy_cpus else "none"
                ),
                "seconds": round(time.monotonic() - started, 1),
                "body_bytes": {key: path.stat().st_size for key, path in bodies.items()},
            },
            "settings": asdict(settings),
            "commands": {name: process.shell_command() for name, process in self.processes.items()},
            "cells": aggregated,
            "soak": soak,
            "memory": mem,
            "log_outcomes": outcomes,
            "targets": evaluate(aggregated, soak, mem),
            "problems": sorted(set(self.problems)),
        }


def _short(result: dict[str, Any]) -> dict[str, Any]:
    keys = ("status", "statuses", "all_json_413", "answer_seconds_max", "rss_peak_growth_mb", "seconds")
    return {key: result[key] for key in keys if key in result}


def _mitmproxy_version() -> str:
    from mitmproxy import version

    return version.VERSION


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one round of 1 s samples and small memory scenarios")
    parser.add_argument("--rounds", type=int, help="rounds over every scenario (default 3; quick 1)")
    parser.add_argument("--duration", type=int, help="seconds per wrk sample (default 5; quick 1)")
    parser.add_argument("--out", default=str(REPO / "bench-results"), help="folder for the JSON and the table")
    parser.add_argument("--chart", help="PNG to draw (default docs/benchmarks.png; quick: in --out)")
    parser.add_argument("--no-chart", action="store_true", help="do not draw the chart")
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs with taskset")
    parser.add_argument("--no-install", action="store_true", help="fail instead of apt-get installing nginx/wrk")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = Settings.from_args(args)
    try:
        tool_paths = tools.ensure(install=not args.no_install)
    except tools.ToolsMissing as error:
        print(f"bench: {error}", file=sys.stderr)
        return 2
    split = None if args.no_pin else tools.cpu_split()
    proxy_cpus, load_cpus = split if split else (None, None)
    if load_cpus:
        os.sched_setaffinity(0, set(load_cpus))  # the driver runs beside wrk, away from the proxies
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sigwarden-bench-") as folder:
        bench = Bench(settings, tool_paths, proxy_cpus, load_cpus, Path(folder))
        results = bench.run()
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    name = "quick" if settings.quick else "bench"
    chart = None
    if not args.no_chart:
        chart = (
            Path(args.chart)
            if args.chart
            else (out / "quick.png" if settings.quick else REPO / "docs" / "benchmarks.png")
        )
        try:
            report.chart(results, chart)
        except ImportError:
            print("bench: matplotlib is missing (pip install -e '.[bench]'): no chart", file=sys.stderr)
            chart = None
    results["chart"] = str(chart) if chart else None
    text = report.table(results)
    markdown = report.markdown(results)
    for path in (out / f"{name}-{stamp}.json", out / f"{name}-latest.json"):
        path.write_text(json.dumps(results, indent=2) + "\n")
    (out / f"{name}-latest.md").write_text(markdown)
    print(text)
    print(f"\nresults: {out / f'{name}-latest.json'}, table: {out / f'{name}-latest.md'}, chart: {chart or 'none'}")
    return 1 if results["problems"] else 0
