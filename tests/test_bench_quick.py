"""`make bench --quick` runs end to end and writes its JSON: every scenario, sane fields.

Not a timed test: no assertion on throughput, only on what the benchmark reports being complete,
consistent and plausible. Needs nginx and wrk (Debian packages; .ci/run installs them).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench import tools  # noqa: E402
from bench.run import make_cells  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory) -> tuple[dict, str, Path]:
    absent = tools.missing()
    if absent:
        message = (
            f"the benchmark needs {', '.join(absent)} (Debian packages {', '.join(tools.PACKAGES[a] for a in absent)})"
        )
        if os.environ.get("CI"):
            pytest.fail(message + ": CI must install them (.ci/run)")
        pytest.skip(message)
    out = tmp_path_factory.mktemp("bench")
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--no-install", "--no-chart", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, (
        f"bench --quick failed ({done.returncode}):\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    )
    return json.loads((out / "quick-latest.json").read_text()), done.stdout, out


def test_every_scenario_is_measured_with_sane_numbers(quick_results):
    results, _, _ = quick_results
    cells = results["cells"]
    assert set(cells) == {cell.key for cell in make_cells()}
    for key, row in cells.items():
        assert row["rounds"] == 1, key
        assert row["requests"] > 0 and row["rps"] > 0, key
        assert 0 < row["p50_ms"] <= row["p99_ms"] < 10_000, key
        assert row["socket_errors"] == 0, key
        assert row["command"].count("wrk") >= 1 and f"-c{row['connections']}" in row["command"], key
        if row["refused"]:
            assert row["status_errors"] == row["requests"], key  # every forged request refused
        else:
            assert row["status_errors"] == 0, key
        if row["server"] != "nginx":
            assert 10 < row["rss_before_mb"] < 1000 and 10 < row["rss_after_mb"] < 1000, key
            assert row["cpu_us_per_request"] > 0, key
        if row["baseline"]:
            assert row["ratio"] > 0 and row["baseline"] in cells, key


def test_the_proxy_decided_what_wrk_sent(quick_results):
    results, _, _ = quick_results
    outcomes = results["log_outcomes"]
    cells = results["cells"]
    valid = sum(
        row["requests"] for key, row in cells.items() if row["server"] == "sigwarden" and key.startswith("valid")
    )
    forged = sum(row["requests"] for key, row in cells.items() if row["server"] == "sigwarden" and row["refused"])
    # Log lines count finished requests; wrk counts answers received (a few may be in flight at its end).
    assert outcomes.get("verified", 0) >= valid > 0
    assert outcomes.get("invalid_signature", 0) >= forged > 0
    assert outcomes.get("body_too_large", 0) >= results["memory"]["oversized"]["clients"]


def test_memory_scenarios_report_growth_and_answers(quick_results):
    results, _, _ = quick_results
    soak, memory = results["soak"], results["memory"]
    assert soak["served_at_high"] >= soak["high_requests"] > soak["low_requests"]
    assert soak["rss_at_low_mb"] > 10 and soak["rss_at_high_mb"] > 10
    flood = memory["oversized"]
    assert flood["all_json_413"] and flood["statuses"] == ["413"]
    assert 0 < flood["answer_seconds_max"] < 20
    assert flood["rss_peak_mb"] >= flood["rss_before_mb"]
    upload, download = memory["upload"], memory["download"]
    assert upload["status"] == 200 and upload["upstream_received_bytes"] == upload["bytes"]
    assert download["status"] == 200 and download["received_bytes"] == download["bytes"]


def test_targets_table_and_commands_are_reported(quick_results):
    results, stdout, out = quick_results
    assert results["problems"] == []
    assert results["settings"]["quick"] is True
    names = [target["target"] for target in results["targets"]]
    assert len(names) == len(set(names)) == 16
    assert all(target["met"] in (True, False) for target in results["targets"])
    assert "mitmdump" in results["commands"]["mitmdump"] and "reverse:" in results["commands"]["mitmdump"]
    assert "sigwarden run" in results["commands"]["sigwarden"]
    for label in ("plain mitmdump (baseline)", "sigwarden, forged signature", "targets (issue 6)", "command lines"):
        assert label in stdout
    markdown = (out / "quick-latest.md").read_text()
    assert "| sigwarden, valid signature |" in markdown


def test_the_chart_is_drawn_from_the_results(quick_results, tmp_path):
    pytest.importorskip("matplotlib", reason="the chart needs the bench extra: pip install -e '.[bench]'")
    from bench import report

    results, _, _ = quick_results
    chart = tmp_path / "chart.png"
    report.chart(results, chart)
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
