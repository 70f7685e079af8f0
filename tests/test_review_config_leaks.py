"""Credentials written into URLs of the config never come back in error messages.

A config error is printed by `sigwarden check` and `sigwarden run`, and logged by a
reload that refuses the new file (`config_rejected`, shipped with the pod's logs).
A Redis password in `dedupe_store`, or userinfo someone put in `upstream`, must not
be in that text, whatever else is wrong with the URL.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from harness import REPO
from sigwarden.config import ConfigError, parse_config

PASSWORD = "redis-pass-canary-3e4f5a"


def data(**overrides):
    config = {
        "upstream": "http://127.0.0.1:8000",
        "secrets": {"s": {"env": "REVIEW_SECRET"}},
        "routes": [{"name": "r", "path": "/webhooks/sendcloud", "secrets": ["s"]}],
    }
    config.update(overrides)
    return config


BAD_URLS = [
    {"dedupe_store": f"redis://:{PASSWORD}@"},
    {"dedupe_store": f"redis://user:{PASSWORD}@/0"},
    {"dedupe_store": f"redis:/user:{PASSWORD}@redis:6379/0"},
    {"dedupe_store": f"rediss//:{PASSWORD}@redis:6379"},
    {"upstream": f"http://app:{PASSWORD}@127.0.0.1:8000"},
    {"upstream": f"http://app:{PASSWORD}@127.0.0.1:8000/path"},
    {"upstream": f"ftp://app:{PASSWORD}@127.0.0.1"},
    {"upstream": f"http://app:{PASSWORD}@127.0.0.1:99999"},
    {"upstream": f"http://:{PASSWORD}@127.0.0.1:8000"},  # no user name: still a credential, refused
    {"upstream": f"http://app:{PASSWORD}/x@127.0.0.1"},  # urllib reads the password as the port
]


@pytest.mark.parametrize("overrides", BAD_URLS, ids=range(len(BAD_URLS)))
def test_a_refused_url_is_not_quoted_with_its_password(overrides):
    with pytest.raises(ConfigError) as refused:
        parse_config(data(**overrides))
    text = str(refused.value)
    assert PASSWORD not in text
    assert next(iter(overrides)) in text  # the key is still named


def test_check_prints_no_password_of_a_refused_store_url(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data(dedupe_store=f"redis://:{PASSWORD}@")))
    done = subprocess.run(
        [sys.executable, "-m", "sigwarden", "check", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
        env={"REVIEW_SECRET": "review-secret-0123456789", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 2
    assert "dedupe_store" in done.stderr
    assert PASSWORD not in done.stdout + done.stderr
