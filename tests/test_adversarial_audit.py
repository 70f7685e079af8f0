"""scripts/audit's reading of a pip-audit report: findings fail, an audit that could not run never passes as clean."""

from __future__ import annotations

import importlib.machinery
import importlib.util

from harness import REPO

_loader = importlib.machinery.SourceFileLoader("audit_script", str(REPO / "scripts" / "audit"))
_spec = importlib.util.spec_from_loader("audit_script", _loader)
assert _spec is not None
audit = importlib.util.module_from_spec(_spec)
_loader.exec_module(audit)

CLEAN = {"name": "pyyaml", "version": "6.0.2", "vulns": []}
SKIPPED = {"name": "h11", "skip_reason": "Dependency not found on PyPI and could not be audited: h11 (0.16.0)"}
VULNERABLE = {
    "name": "h11",
    "version": "0.14.0",
    "vulns": [{"id": "GHSA-vqfr-h8mv-ghfj", "fix_versions": ["0.16.0"], "description": "..."}],
}


def test_a_known_vulnerability_is_a_finding_even_when_other_packages_were_skipped():
    outcome, lines = audit.classify({"dependencies": [CLEAN, SKIPPED, VULNERABLE]})
    assert outcome == "vulnerable"
    assert lines == ["VULNERABLE h11 0.14.0: GHSA-vqfr-h8mv-ghfj (fixed in: 0.16.0)"]


def test_every_package_audited_and_none_vulnerable_is_clean():
    assert audit.classify({"dependencies": [CLEAN, dict(CLEAN, name="redis")]})[0] == "clean"


def test_a_skipped_package_makes_the_audit_unavailable_not_clean():
    outcome, lines = audit.classify({"dependencies": [CLEAN, SKIPPED]})
    assert outcome == "unavailable"
    assert lines[0] == "audited 1 of 2 packages; 1 could not be looked up:"


def test_an_empty_report_is_unavailable():
    assert audit.classify({"dependencies": []})[0] == "unavailable"
