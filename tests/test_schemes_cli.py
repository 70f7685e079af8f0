"""`sigwarden sign --scheme`: every scheme, its options from --option, the header lines when several."""

from __future__ import annotations

import pytest

from schemes_support import outcome
from sigwarden import cli
from sigwarden.outcomes import Outcome


@pytest.fixture
def body_file(tmp_path):
    def write(content: bytes):
        path = tmp_path / "body"
        path.write_bytes(content)
        return str(path)

    return write


def run_sign(capsys, monkeypatch, secret: str, *arguments: str) -> tuple[int | str | None, str, str]:
    monkeypatch.setenv("SIGN_SECRET", secret)
    try:
        status: int | str | None = cli.main(["sign", "--secret-env", "SIGN_SECRET", *arguments])
    except SystemExit as exit:
        status = exit.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_sendcloud_sign_is_unchanged(capsys, monkeypatch, body_file):
    # SENDCLOUD.md's documented vector.
    status, out, _ = run_sign(capsys, monkeypatch, "secretkey", body_file(b'{"key": "value"}'))
    assert (status, out) == (0, "1eed4b3d41f4653ac64fd56f1bf1cbfd349e4482cbc11dff7134bd93e5da4b0a\n")


def test_github_sign_prints_the_header_value(capsys, monkeypatch, body_file):
    # GitHub's documented vector (see test_schemes_presets.py).
    status, out, _ = run_sign(
        capsys, monkeypatch, "It's a Secret to Everybody", "--scheme", "github", body_file(b"Hello, World!")
    )
    assert (status, out) == (0, "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17\n")


def test_standard_webhooks_sign_prints_three_header_lines_that_verify(capsys, monkeypatch, body_file):
    key = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    status, out, _ = run_sign(capsys, monkeypatch, key, "--scheme", "standard-webhooks", body_file(b"{}"))
    assert status == 0
    headers = dict(line.split(": ", 1) for line in out.splitlines())
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert outcome("standard-webhooks", headers, b"{}", [("k", key.encode())]) is Outcome.VERIFIED


def test_options_are_parsed_as_in_the_config(capsys, monkeypatch, body_file):
    status, out, _ = run_sign(
        capsys,
        monkeypatch,
        "s3cret-0123456789",
        "--scheme",
        "hmac",
        "--option",
        "header=X-Signature",
        "--option",
        "encoding=base64",
        "--option",
        "timestamp_header=X-Timestamp",
        "--option",
        "signed_content={timestamp}.{body}",
        "--option",
        "tolerance=600",
        body_file(b"payload"),
    )
    assert status == 0
    headers = dict(line.split(": ", 1) for line in out.splitlines())
    options = {
        "header": "X-Signature",
        "encoding": "base64",
        "timestamp_header": "X-Timestamp",
        "signed_content": "{timestamp}.{body}",
    }
    assert outcome("hmac", headers, b"payload", [("k", b"s3cret-0123456789")], options) is Outcome.VERIFIED


def test_token_sign_with_basic_credentials(capsys, monkeypatch, body_file):
    status, out, _ = run_sign(
        capsys, monkeypatch, "Aladdin:open sesame", "--scheme", "token", "--option", "auth=basic", body_file(b"")
    )
    assert (status, out) == (0, "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\n")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--scheme", "github", "--option", "algorithm=sha1"], "key of scheme github (none)"),
        (["--scheme", "hmac"], "header: required for scheme hmac"),
        (["--scheme", "hmac", "--option", "header"], "expected KEY=VALUE"),
        (["--scheme", "token", "--option", "auth=basic"], "user:password"),
        (["--scheme", "standard-webhooks"], "not valid base64"),
    ],
)
def test_bad_options_or_secrets_exit_with_a_message(capsys, monkeypatch, body_file, arguments, message):
    status, out, err = run_sign(capsys, monkeypatch, "not*base64", *arguments, body_file(b""))
    assert status != 0
    assert message in str(status) + err
    assert out == ""
