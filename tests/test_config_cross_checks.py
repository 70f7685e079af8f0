"""Config checks that span two parts of the file."""

from __future__ import annotations

import pytest

from sigwarden.config import ConfigError, parse_config


def _config(route: dict, **extra) -> dict:
    return {
        "upstream": "http://127.0.0.1:8000",
        "secrets": {"t": {"value": "0123456789abcdef0123"}},
        "routes": [{"name": "r", "path": "/hook", "secrets": ["t"], **route}],
        **extra,
    }


@pytest.mark.parametrize("spelling", ["X-Webhook-Verified", "x_webhook_key_id", "X-WEBHOOK-VERIFY-ERROR"])
def test_a_scheme_header_cannot_be_a_verdict_header(spelling):
    with pytest.raises(ConfigError) as raised:
        parse_config(_config({"scheme": "token", "auth": "api_key", "header": spelling}), "c.yaml")
    assert raised.value.problems == [
        f"routes[0].header: {spelling!r} is one of sigwarden's verdict headers (see headers:), "
        "removed from every request"
    ]


def test_renamed_verdict_headers_are_the_ones_checked():
    renamed = {"verified": "X-Sig-Ok", "key_id": "X-Sig-Key", "error": "X-Sig-Error"}
    parse_config(_config({"scheme": "token", "auth": "api_key", "header": "X-Webhook-Verified"}, headers=renamed))
    with pytest.raises(ConfigError):
        parse_config(_config({"scheme": "hmac", "header": "x-sig-ok"}, headers=renamed))
