"""`make bench-micro`: the addon's own per-request work, without mitmproxy's event loop and layers.

Drives the Sigwarden addon's hooks (requestheaders, request, responseheaders, response) with flows
made by mitmproxy.test.tflow, the way mitmproxy calls them for one request, and times them per request:
each repetition runs a batch of fresh flows; the best repetition counts (best-of-N: the least
disturbed by other load on the machine). The request log line is formatted and written to /dev/null.

    python -m bench.micro [--batch 2000] [--repeat 15] [--json FILE]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from mitmproxy import http
from mitmproxy.test import tflow, tutils

from bench.load import sendcloud_body
from sigwarden.addon import Sigwarden
from sigwarden.config import parse_config
from sigwarden.logs import configure_logging

try:
    from sigwarden.proxy import skip_debug_type_checks
except ImportError:  # an earlier commit of sigwarden, measured for a before/after comparison

    def skip_debug_type_checks() -> None:
        pass


SECRET = "micro-secret-0123456789abcdef"  # noqa: S105 - a benchmark's throwaway key
TARGET_US = 30.0


def make_addon(routes: int = 1, secrets: int = 1) -> Sigwarden:
    names = [f"old-{index}" for index in range(secrets - 1)] + ["sendcloud"]
    values = {name: f"micro-old-secret-{index:02d}-0123456789" for index, name in enumerate(names)}
    values["sendcloud"] = SECRET
    route_list: list[dict[str, Any]] = [
        {"name": f"provider-{index}", "path": f"/webhooks/provider-{index}", "secrets": ["sendcloud"]}
        for index in range(routes - 1)
    ]
    route_list.append({"name": "sendcloud", "path": ["/webhooks/sendcloud"], "secrets": names})
    config = parse_config(
        {
            "listen": "127.0.0.1:8080",
            "upstream": "http://127.0.0.1:8000",
            "admin_listen": None,
            "secrets": {name: {"value": value} for name, value in values.items()},
            "routes": route_list,
        },
        source="<micro>",
    )
    return Sigwarden(config)


def request_headers(body: bytes, signature: str | None) -> http.Headers:
    """The head of a webhook as it arrives through an ingress: ten ordinary headers."""
    fields = [
        (b"host", b"shop.example.com"),
        (b"user-agent", b"python-requests/2.32.3"),
        (b"accept-encoding", b"gzip, deflate"),
        (b"accept", b"*/*"),
        (b"connection", b"keep-alive"),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-forwarded-for", b"203.0.113.7"),
        (b"x-forwarded-proto", b"https"),
    ]
    if signature is not None:
        fields.append((b"sendcloud-signature", signature.encode()))
    return http.Headers(fields)


def make_flows(count: int, path: str, body: bytes, signature: str | None) -> list[http.HTTPFlow]:
    flows = []
    for _ in range(count):
        request = tutils.treq(
            method=b"POST", path=path.encode(), headers=request_headers(body, signature), content=body
        )
        flows.append(tflow.tflow(req=request))
    return flows


RESPONSE_FIELDS = ((b"content-type", b"application/json"), (b"content-length", b"12"))


def time_hooks(addon: Sigwarden, flows: list[http.HTTPFlow]) -> list[float]:
    """Seconds per request spent in each of the four hooks over these (fresh) flows."""
    response = tutils.tresp(headers=http.Headers(RESPONSE_FIELDS), content=b'{"ok": true}')
    requestheaders, request = addon.requestheaders, addon.request
    responseheaders, on_response = addon.responseheaders, addon.response
    clock = time.perf_counter
    spent = [0.0, 0.0, 0.0, 0.0]
    for flow in flows:
        start = clock()
        requestheaders(flow)
        after_requestheaders = clock()
        request(flow)
        after_request = clock()
        if flow.response is None:  # forwarded: the upstream's answer arrives
            flow.response = response
        before_responseheaders = clock()
        responseheaders(flow)
        after_responseheaders = clock()
        on_response(flow)
        end = clock()
        spent[0] += after_requestheaders - start
        spent[1] += after_request - after_requestheaders
        spent[2] += after_responseheaders - before_responseheaders
        spent[3] += end - after_responseheaders
    return [value / len(flows) for value in spent]


def best_of(repeat: int, setup: Callable[[], list[http.HTTPFlow]], addon: Sigwarden) -> list[float]:
    """Per hook, the best repetition (the least disturbed by other load on the machine)."""
    runs = [time_hooks(addon, setup()) for _ in range(repeat)]
    best = min(runs, key=sum)
    return best


def hmac_time(body: bytes, repeat: int = 15, batch: int = 2000) -> float:
    key = SECRET.encode()
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for _ in range(batch):
            hmac.new(key, body, hashlib.sha256).digest()
        best = min(best, (time.perf_counter() - started) / batch)
    return best


HOOKS = ("requestheaders", "request", "responseheaders", "response")


def run(batch: int, repeat: int) -> dict[str, Any]:
    skip_debug_type_checks()  # as `sigwarden run` does
    devnull = open("/dev/null", "w")  # noqa: SIM115 - lives as long as the process
    body = sendcloud_body()
    valid = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    forged = hmac.new(b"not-the-secret-0123456789", body, hashlib.sha256).hexdigest()
    cases = {
        "valid": (make_addon(), "/webhooks/sendcloud", valid),
        "forged": (make_addon(), "/webhooks/sendcloud", forged),
        "passthrough": (make_addon(), "/shop/api/orders", None),
        "valid, 50 routes": (make_addon(routes=50), "/webhooks/sendcloud", valid),
        "valid, 5 secrets": (make_addon(secrets=5), "/webhooks/sendcloud", valid),
    }
    results: dict[str, Any] = {"body_bytes": len(body), "batch": batch, "repeat": repeat, "target_us": TARGET_US}
    totals, without_log, hooks = {}, {}, {}
    for name, (addon, path, signature) in cases.items():
        # The flows go through the addon as mitmproxy would send them: check the verdicts first.
        configure_logging("json", "info", stream=devnull)
        probe = make_flows(1, path, body, signature)[0]
        time_hooks(addon, [probe])
        expected = {"valid": 200, "forged": 401, "passthrough": 200}[name.split(",")[0]]
        assert probe.response is not None and probe.response.status_code == expected, (name, probe.response)
        per_hook = best_of(repeat, lambda p=path, s=signature: make_flows(batch, p, body, s), addon)
        hooks[name] = {hook: round(value * 1e6, 2) for hook, value in zip(HOOKS, per_hook, strict=True)}
        totals[name] = round(sum(per_hook) * 1e6, 2)
        configure_logging("json", "warning", stream=devnull)  # the same work without the request log line
        without_log[name] = round(
            sum(best_of(repeat, lambda p=path, s=signature: make_flows(batch, p, body, s), addon)) * 1e6, 2
        )
    results["hooks_us_per_request"] = totals
    results["without_log_line_us"] = without_log
    results["per_hook_us"] = hooks
    results["hmac_sha256_us"] = round(hmac_time(body) * 1e6, 2)
    results["meets_target"] = all(value < TARGET_US for value in totals.values())
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.micro", description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=2000, help="flows per repetition")
    parser.add_argument("--repeat", type=int, default=15, help="repetitions; the best one counts")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    results = run(args.batch, args.repeat)
    print(f"sigwarden addon, µs per request ({results['body_bytes']} B body, best of {args.repeat} × {args.batch}):")
    print(f"  {'':18} {'all hooks':>9} {'no log':>7}   " + " ".join(f"{hook:>14}" for hook in HOOKS))
    for name, value in results["hooks_us_per_request"].items():
        per_hook = " ".join(f"{results['per_hook_us'][name][hook]:14.2f}" for hook in HOOKS)
        verdict = "ok" if value < TARGET_US else "OVER"
        print(f"  {name:18} {value:9.2f} {results['without_log_line_us'][name]:7.2f}   {per_hook}  {verdict}")
    print(f"  target: all hooks < {TARGET_US:.0f} µs; 'no log' is the same work without the JSON request log line")
    print(f"  HMAC-SHA256 of the body alone: {results['hmac_sha256_us']:.2f} µs")
    if args.json:
        with open(args.json, "w") as file:
            json.dump(results, file, indent=2)
    return 0 if results["meets_target"] else 1


if __name__ == "__main__":
    sys.exit(main())
