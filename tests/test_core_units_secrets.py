"""Sizes, durations and secrets: plain values in, plain values out."""

from __future__ import annotations

import datetime
import os

import pytest

from sigwarden.config import SecretSpec
from sigwarden.secrets import SecretStore, load_secret
from sigwarden.units import format_size, parse_duration, parse_size

# --- sizes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "size"),
    [
        ("512B", 512),
        ("0B", 0),
        ("64KiB", 64 * 1024),
        ("1MiB", 1024 * 1024),
        ("1mib", 1024 * 1024),
        ("1 MiB", 1024 * 1024),
        (" 2KiB ", 2048),
        ("1.5KiB", 1536),
        ("512", 512),
        (4096, 4096),
        (0, 0),
    ],
)
def test_sizes(written, size):
    assert parse_size(written) == size


@pytest.mark.parametrize(
    "written",
    ["1MB", "1KB", "1K", "KiB", "", "-1KiB", "1e3B", "0.5B", "1.0001KiB", "١٢B", "1_000B", True, None, 1.5, -1],
)
def test_sizes_that_are_refused(written):
    with pytest.raises(ValueError):
        parse_size(written)


@pytest.mark.parametrize(("size", "written"), [(1024 * 1024, "1MiB"), (65536, "64KiB"), (1536, "1536B"), (0, "0B")])
def test_sizes_are_shown_in_the_largest_whole_unit(size, written):
    assert format_size(size) == written


# --- durations --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "seconds"),
    [
        ("30s", 30),
        ("5m", 300),
        ("12h", 43200),
        ("1d", 86400),
        ("0s", 0),
        ("1.5h", 5400),
        ("250ms", 0.25),
        ("10", 10),
        (3, 3),
        (2.5, 2.5),
    ],
)
def test_durations(written, seconds):
    assert parse_duration(written) == seconds


@pytest.mark.parametrize(
    "written", ["1w", "s", "", "-1s", "5 minutes", "forever", "٣s", True, None, -1, float("inf"), float("nan")]
)
def test_durations_that_are_refused(written):
    with pytest.raises(ValueError):
        parse_duration(written)


# --- secrets ------------------------------------------------------------------------

NOW = datetime.datetime(2026, 6, 1, tzinfo=datetime.UTC)


def spec(source: str, location: str, expires: datetime.datetime | None = None, name: str = "sendcloud") -> SecretSpec:
    return SecretSpec(name, source, location, expires)


def test_a_file_secret_is_stripped_of_surrounding_whitespace(tmp_path):
    path = tmp_path / "key"
    path.write_bytes(b"  \tsecret-from-a-file-0123\r\n\n")
    loaded = load_secret(spec("file", str(path)))
    assert loaded.value == b"secret-from-a-file-0123"
    assert loaded.problem is None


def test_inner_whitespace_of_a_secret_is_kept(tmp_path):
    path = tmp_path / "key"
    path.write_bytes(b"two words\n")
    assert load_secret(spec("file", str(path))).value == b"two words"


def test_an_env_secret_is_stripped_too():
    loaded = load_secret(spec("env", "KEY"), {"KEY": " secret-from-env-0123456 \n"})
    assert loaded.value == b"secret-from-env-0123456"


def test_an_inline_value_is_used_as_written():
    assert load_secret(spec("value", "inline-secret-0123456")).value == b"inline-secret-0123456"


def test_a_missing_file_is_a_problem_not_an_exception(tmp_path):
    path = tmp_path / "absent"
    loaded = load_secret(spec("file", str(path)))
    assert loaded.value is None
    assert loaded.problem == f"file {path} does not exist"


def test_an_empty_file_is_a_problem(tmp_path):
    path = tmp_path / "key"
    path.write_bytes(b" \n\t\n")
    loaded = load_secret(spec("file", str(path)))
    assert loaded.value is None
    assert loaded.problem == f"file {path} is empty"


def test_an_unreadable_file_is_a_problem(tmp_path):
    loaded = load_secret(spec("file", str(tmp_path)))  # a directory
    assert loaded.value is None
    assert loaded.problem == f"file {tmp_path} cannot be read: Is a directory"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_a_file_without_permission_is_a_problem(tmp_path):
    path = tmp_path / "key"
    path.write_bytes(b"secret")
    path.chmod(0)
    assert load_secret(spec("file", str(path))).problem == f"file {path} cannot be read: Permission denied"


def test_an_unset_variable_is_a_problem():
    loaded = load_secret(spec("env", "SIGWARDEN_TEST_UNSET"), {})
    assert loaded.value is None
    assert loaded.problem == "environment variable SIGWARDEN_TEST_UNSET is not set"


def test_an_empty_variable_is_a_problem():
    loaded = load_secret(spec("env", "KEY"), {"KEY": "  "})
    assert loaded.problem == "env $KEY is empty"


def test_a_problem_never_quotes_the_value(tmp_path):
    path = tmp_path / "key"
    path.write_bytes(b"do-not-print-this-secret")
    store = SecretStore({"a": spec("file", str(path), NOW - datetime.timedelta(seconds=1), name="a")})
    assert "do-not-print" not in repr(store.problems(NOW))
    assert "do-not-print" not in store.secrets["a"].spec.describe()


def test_usable_secrets_are_the_readable_unexpired_ones_in_route_order(tmp_path):
    store = SecretStore(
        {
            "current": spec("env", "CURRENT", name="current"),
            "old": spec("env", "OLD", NOW + datetime.timedelta(days=1), name="old"),
            "expired": spec("env", "EXPIRED", NOW, name="expired"),
            "unset": spec("env", "UNSET", name="unset"),
        },
        {"CURRENT": "current-secret", "OLD": "old-secret", "EXPIRED": "expired-secret"},
    )
    assert store.usable(["old", "current", "expired", "unset", "undefined"], NOW) == [
        ("old", b"old-secret"),
        ("current", b"current-secret"),
    ]
    assert store.problems(NOW) == {"expired": "expired", "unset": "environment variable UNSET is not set"}


def test_a_secret_is_refused_from_the_instant_it_expires():
    expires = NOW + datetime.timedelta(seconds=10)
    store = SecretStore({"a": spec("value", "inline-secret-0123456", expires, name="a")})
    assert store.usable(["a"], expires - datetime.timedelta(microseconds=1)) == [("a", b"inline-secret-0123456")]
    assert store.usable(["a"], expires) == []
    assert store.usable(["a"], expires + datetime.timedelta(days=1)) == []


def test_short_secrets_are_warned_about_but_used():
    store = SecretStore({"short": spec("value", "tiny", name="short"), "long": spec("value", "x" * 16, name="long")})
    assert store.warnings() == ["secrets.short: shorter than 16 characters; Sendcloud's signature keys are at least 16"]
    assert store.usable(["short"], NOW) == [("short", b"tiny")]


def test_a_file_that_appears_later_is_picked_up(tmp_path):
    path = tmp_path / "key"
    store = SecretStore({"a": spec("file", str(path), name="a")})
    assert store.usable(["a"], NOW) == []
    path.write_bytes(b"arrived-later-0123456\n")
    assert store.refresh() == ["a"]
    assert store.usable(["a"], NOW) == [("a", b"arrived-later-0123456")]


def test_a_file_that_disappears_fails_closed(tmp_path):
    path = tmp_path / "key"
    path.write_bytes(b"present-at-start-012345")
    store = SecretStore({"a": spec("file", str(path), name="a")})
    path.unlink()
    store.refresh()
    assert store.usable(["a"], NOW) == []
    assert store.problems(NOW) == {"a": f"file {path} does not exist"}
