"""The benchmark's table (terminal and Markdown) and its chart."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _num(value: Any, digits: int = 1, suffix: str = "") -> str:
    if value is None:
        return "–"
    return f"{value:.{digits}f}{suffix}"


def _pinning(meta: dict[str, Any]) -> str:
    pins = meta["pinning"]
    if not isinstance(pins, dict):
        return "no CPU pinning"
    proxies = ",".join(str(cpu) for cpu in pins["proxies"])
    others = ",".join(str(cpu) for cpu in pins["wrk_nginx_and_driver"])
    return f"proxies pinned to CPU {proxies}, wrk, nginx and the driver to CPU {others}"


def _rows(results: dict[str, Any], group: str) -> list[list[str]]:
    rows = []
    for row in results["cells"].values():
        if row["group"] != group:
            continue
        spread = f"{_num(row['rps_min'], 0)}–{_num(row['rps_max'], 0)}"
        rss = (
            f"{_num(row['rss_before_mb'])} → {_num(row['rss_after_mb'])}"
            if row.get("rss_before_mb") is not None
            else "–"
        )
        rows.append(
            [
                row["label"],
                str(row["connections"]),
                _num(row["rps"], 0),
                spread,
                _num(row.get("ratio"), 2, "×") if row.get("baseline") else "1.00×",
                _num(row["p50_ms"], 2),
                _num(row["p99_ms"], 2),
                _num(row.get("cpu_us_per_request"), 0),
                _num(row.get("cpu_ratio"), 2, "×") if row.get("baseline") else "1.00×",
                rss,
            ]
        )
    return rows


HEADER = [
    "scenario", "conns", "req/s", "range", "vs baseline", "p50 ms", "p99 ms", "CPU µs/req", "CPU vs baseline",
    "proxy RSS MB, first → last sample",
]  # fmt: skip


def _text_table(rows: list[list[str]]) -> str:
    widths = [max(len(row[index]) for row in [HEADER, *rows]) for index in range(len(HEADER))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in [HEADER, *rows]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _md_table(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "|".join(["---"] + ["---:"] * (len(HEADER) - 1)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _memory_lines(results: dict[str, Any]) -> list[str]:
    soak, mem = results["soak"], results["memory"]
    lines = []
    if "rss_at_low_mb" in soak:
        lines.append(
            f"RSS after {soak['served_at_low']} requests {soak['rss_at_low_mb']} MB, after {soak['served_at_high']} "
            f"{soak['rss_at_high_mb']} MB ({soak['growth_percent']:+.2f} %); max {soak['max_rss_mb']} MB"
        )
    else:
        lines.append(f"RSS soak: fewer than {soak['high_requests']} requests served in time")
    flood = mem["oversized"]
    lines.append(
        f"{flood['clients']} clients declaring {flood['declared_bytes'] // 2**20} MiB, streaming "
        f"{flood['streamed_bytes'] // 2**20} MiB: statuses {','.join(flood['statuses'])} "
        f"({'all JSON 413' if flood['all_json_413'] else 'NOT all JSON 413'}), answered in median "
        f"{_num(flood['answer_seconds_median'], 3)} s, max {_num(flood['answer_seconds_max'], 3)} s; "
        f"RSS {flood['rss_before_mb']} → peak {flood['rss_peak_mb']} → {flood['rss_after_mb']} MB"
    )
    for name in ("upload", "download"):
        run = mem[name]
        lines.append(
            f"{run['bytes'] // 2**20} MiB {name}, unprotected path: status {run['status']}, {run['mb_per_s']} MiB/s, "
            f"RSS {run['rss_before_mb']} → peak {run['rss_peak_mb']} → {run['rss_after_mb']} MB "
            f"(peak growth {run['rss_peak_growth_mb']} MB)"
            + (f", upstream received {run['upstream_received_bytes']} B" if name == "upload" else "")
        )
    return lines


def _target_lines(results: dict[str, Any]) -> list[list[str]]:
    rows = []
    for target in results["targets"]:
        comparison = "≥" if target["higher_is_better"] else "≤"
        verdict = {True: "met", False: "NOT met", None: "not measured"}[target["met"]]
        value = _num(target["value"], 2, target["unit"]) if target["value"] is not None else "–"
        if target.get("cpu_ratio") is not None:
            value += f" (CPU {target['cpu_ratio']:.2f}×)"
        rows.append([target["target"], value, f"{comparison} {target['limit']}{target['unit']}", verdict])
    return rows


def table(results: dict[str, Any]) -> str:
    meta = results["meta"]
    parts = [
        f"sigwarden benchmark {meta['date']} commit {meta['commit']}, {meta['machine']['cpus']} CPUs "
        f"({meta['machine']['cpu']}), load average at start {meta['machine']['loadavg_start'][0]:.2f}, "
        f"{_pinning(meta)}, {results['settings']['rounds']} rounds × {results['settings']['duration']} s, "
        f"{meta['seconds']} s in all",
        "",
        _text_table(_rows(results, "main")),
        "",
        "scaling (10 connections):",
        _text_table(_rows(results, "scaling")),
        "",
        "memory:",
        *("  " + line for line in _memory_lines(results)),
        "",
        "targets (issue 6):",
        *("  " + "  ".join(row) for row in _target_lines(results)),
        "",
        "command lines:",
        *(f"  {name}: {command}" for name, command in results["commands"].items()),
        *(f"  wrk ({row['key']}): {row['command']}" for row in results["cells"].values() if row["rounds"]),
    ]
    if results["problems"]:
        parts += ["", "PROBLEMS:", *("  " + problem for problem in results["problems"])]
    return "\n".join(parts)


def markdown(results: dict[str, Any]) -> str:
    meta = results["meta"]
    targets = ["| target | measured | goal | |", "|---|---:|---:|---|"]
    targets += ["| " + " | ".join(row) + " |" for row in _target_lines(results)]
    parts = [
        f"Run {meta['date']}, commit `{meta['commit']}`, {meta['machine']['cpus']} × {meta['machine']['cpu']}, "
        f"load average {meta['machine']['loadavg_start'][0]:.2f} at start and {meta['machine']['loadavg_end'][0]:.2f}"
        f" at the end, {_pinning(meta)}, {results['settings']['rounds']} rounds × "
        f"{results['settings']['duration']} s per sample, {meta['seconds']} s in all; {meta['tools']['nginx']}, "
        f"{meta['tools']['wrk'].split(' Copyright')[0]}, mitmproxy {meta['tools']['mitmproxy']}.",
        "",
        _md_table(_rows(results, "main")),
        "",
        "Scaling, 10 connections:",
        "",
        _md_table(_rows(results, "scaling")),
        "",
        "Memory:",
        "",
        *(f"- {line}" for line in _memory_lines(results)),
        "",
        *targets,
        "",
    ]
    return "\n".join(parts)


def chart(results: dict[str, Any], path: Path) -> None:
    """Requests/s by scenario (1 and 10 connections), p50/p99 at 10 connections, and scaling; a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = results["cells"]
    scenarios = ["direct", "baseline", "valid", "forged", "passthrough"]
    names = [
        "direct\n(nginx)",
        "mitmdump\n(baseline)",
        "sigwarden\nvalid",
        "sigwarden\nforged",
        "sigwarden\npass-through",
    ]
    figure, axes = plt.subplots(1, 3, figsize=(16, 5.2), gridspec_kw={"width_ratios": [5, 4, 5]})

    ax = axes[0]
    proxies = scenarios[1:]
    width = 0.38
    for offset, connections, color in ((-width / 2, 1, "#7aa6c2"), (width / 2, 10, "#1f5f8b")):
        rows = [cells[f"{scenario}-c{connections}"] for scenario in proxies]
        values = [row["rps"] or 0 for row in rows]
        errors = [
            [value - (row["rps_min"] or value) for value, row in zip(values, rows, strict=True)],
            [(row["rps_max"] or value) - value for value, row in zip(values, rows, strict=True)],
        ]
        positions = [index + offset for index in range(len(proxies))]
        bars = ax.bar(positions, values, width, yerr=errors, capsize=3, color=color, label=f"{connections} conn")
        for bar, row in zip(bars, rows, strict=True):
            if row.get("ratio"):
                ax.annotate(
                    f"{row['ratio']:.2f}×",
                    (bar.get_x() + bar.get_width() / 2, max(bar.get_height(), row["rps_max"] or 0)),
                    ha="center",
                    va="bottom",
                    fontsize=8,
                    xytext=(0, 4),
                    textcoords="offset points",
                )
    ax.set_xticks(range(len(proxies)), names[1:])
    ax.set_ylabel("requests/s (median of rounds, bars: min–max)")
    ax.set_ylim(0, max((cells[f"{s}-c{c}"]["rps_max"] or 0) for s in proxies for c in (1, 10)) * 1.12)
    direct = cells["direct-c10"]["rps"]
    ax.set_title(f"Throughput, 1 KB POST (direct to nginx: {direct:.0f} req/s at 10 conn)", fontsize=10)
    ax.legend(loc="upper left", fontsize=8)

    ax = axes[1]
    rows = [cells[f"{scenario}-c10"] for scenario in proxies]
    positions = list(range(len(proxies)))
    ax.bar(
        [p - width / 2 for p in positions], [row["p50_ms"] or 0 for row in rows], width, color="#9bc79b", label="p50"
    )
    ax.bar(
        [p + width / 2 for p in positions], [row["p99_ms"] or 0 for row in rows], width, color="#3a7d3a", label="p99"
    )
    ax.set_xticks(positions, names[1:])
    ax.set_ylabel("latency, ms")
    ax.set_title("Latency at 10 connections", fontsize=10)
    ax.legend(loc="upper right", fontsize=8)

    ax = axes[2]
    groups = [
        ("1 KB", "baseline-c10", "valid-c10"),
        ("64 KB", "baseline-64k-c10", "valid-64k-c10"),
        ("1 MiB", "baseline-1m-c10", "valid-1m-c10"),
        ("50 routes", "baseline-c10", "valid-50routes-c10"),
        ("5 secrets", "baseline-c10", "valid-5secrets-c10"),
    ]
    positions = list(range(len(groups)))
    base_values = [cells[base]["rps"] or 0 for _, base, _ in groups]
    ours = [cells[key]["rps"] or 0 for _, _, key in groups]
    ax.bar([p - width / 2 for p in positions], base_values, width, color="#c9a46b", label="mitmdump (baseline)")
    bars = ax.bar([p + width / 2 for p in positions], ours, width, color="#8b5a1f", label="sigwarden valid")
    for bar, (_, _, key) in zip(bars, groups, strict=True):
        if cells[key].get("ratio"):
            ax.annotate(
                f"{cells[key]['ratio']:.2f}×",
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center",
                va="bottom",
                fontsize=8,
                xytext=(0, 4),
                textcoords="offset points",
            )
    ax.set_xticks(positions, [label for label, _, _ in groups])
    ax.set_ylim(0, max(base_values + ours) * 1.3)
    ax.set_ylabel("requests/s at 10 conn")
    ax.set_title("Scaling: body size, routes, secrets", fontsize=10)
    ax.legend(loc="upper center", fontsize=8, ncols=2)

    meta = results["meta"]
    figure.suptitle(
        f"sigwarden vs plain mitmdump — {meta['date'][:10]}, commit {meta['commit']}, {meta['machine']['cpus']} CPUs, "
        f"load avg {meta['machine']['loadavg_start'][0]:.1f}, {results['settings']['rounds']}×"
        f"{results['settings']['duration']} s per cell"
        + (" — QUICK (not meaningful)" if results["settings"]["quick"] else ""),
        fontsize=11,
    )
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
