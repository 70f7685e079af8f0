"""A tiny application for `make run`: prints each request and whether sigwarden verified it."""

from __future__ import annotations

import argparse
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class DemoHandler(BaseHTTPRequestHandler):
    server_version = "demo-shop"
    verdict_header = "X-Webhook-Verified"

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        verified = self.headers.get(self.verdict_header)
        key_id = self.headers.get("X-Webhook-Key-Id")
        mark = {"true": "VERIFIED", "false": "NOT verified (report mode)"}.get(verified or "", "no verdict header")
        print(
            f"demo-shop: {self.command} {self.path} ({len(body)} bytes) → {mark}"
            + (f", key {key_id}" if key_id else ""),
            flush=True,
        )
        reply = json.dumps({"shop": "demo", "received": self.path, "verified": verified}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Demo upstream for sigwarden")
    parser.add_argument("--listen", default="127.0.0.1:8000")
    args = parser.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    server = ThreadingHTTPServer((host, int(port)), DemoHandler)
    print(f"demo-shop: listening on http://{args.listen}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
