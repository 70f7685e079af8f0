"""What a request head must look like to be passed on, beyond mitmproxy's own checks (SPEC §4.6 `bad_request`).

mitmproxy forwards the header values and the request target it parsed byte for
byte. A value holding a bare CR, a folded line (mitmproxy keeps the fold as
CR LF SP) or a NUL reaches the application as-is, and lenient parsers there
(Python's http.server, CGI glue, proxies without obs-fold support) read it as a
second header line: a forged verdict or a smuggled `Transfer-Encoding`. A `#`
or a control byte in the target, or an ambiguous `Host`, lets the application's
router see another path than sigwarden; `Transfer_Encoding` or `Content.Length`
(framing headers to CGI-style readers, not to mitmproxy) another body; an `Upgrade`
to h2c would let requests pass inside a tunnel. Such requests are refused on every path.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from . import paths
from .config import canonical_field_name
from .decision import PATH_OVERRIDE_HEADERS

# RFC 9110 §5.5: field values are VCHAR, obs-text, SP and HTAB; no other control byte.
_BAD_VALUE_BYTE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
# RFC 9112 §3.2: the request target has no fragment, no whitespace and no control byte.
_BAD_TARGET_BYTE = re.compile(rb"[\x00-\x20\x7f#]")
# Matching reads a path several ways (paths.normal_forms), at about a microsecond per byte; web
# servers refuse longer request lines anyway (Apache: 8190 bytes, nginx: 8 KiB buffers).
MAX_PATH_BYTES = 8192
# RFC 3986 authority without userinfo: an IP literal or a reg-name, and an optional port.
_FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding"})
_HOST = re.compile(rb"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]*)(?::[0-9]*)?$")


def head_problem(target: bytes, fields: Iterable[tuple[bytes, bytes]]) -> str | None:
    """Why this request head may not be forwarded (one line, quoting nothing of it), or None."""
    if _BAD_TARGET_BYTE.search(target):
        return "request target with a fragment, whitespace or a control character"
    if problem := _path_problem(target):
        return problem
    hosts = 0
    for name, value in fields:
        if _BAD_VALUE_BYTE.search(value):
            return "header value with a CR, LF, NUL or other control character (folded or split line)"
        canonical = canonical_field_name(name)
        if canonical in PATH_OVERRIDE_HEADERS and (problem := _path_problem(value)):
            return f"path-override header with a {problem}"
        if canonical in _FRAMING_HEADERS and name.lower() != canonical.encode():
            # mitmproxy frames by the exact name only; a CGI-style reader (HTTP_TRANSFER_ENCODING) by either.
            return "Content-Length or Transfer-Encoding spelled with another separator"
        if name.lower() == b"upgrade" and any(token.strip().lower() != b"websocket" for token in value.split(b",")):
            # After a 101 the connection is a tunnel sigwarden no longer reads: h2c would carry HTTP/2 requests
            # (any path, any header) straight to an upstream that speaks it (h2c smuggling).
            return "Upgrade to a protocol other than websocket"
        if name.lower() == b"host":
            hosts += 1
            if hosts > 1:
                return "more than one Host header"
            if not _HOST.match(value):
                return "Host header that is not a host and port"
    return None


def _path_problem(target: bytes) -> str | None:
    path = target.split(b"?", 1)[0]
    if len(path) > MAX_PATH_BYTES:
        return f"request path longer than {MAX_PATH_BYTES} bytes"
    if paths.too_deeply_encoded(path.decode("utf-8", "surrogateescape")):
        return f"request path percent-encoded more than {paths.MAX_DECODINGS} times"
    return None
