"""The registry of signature schemes: a route's `scheme` names one of these."""

from __future__ import annotations

from .base import HeaderLookup, PlainHeaders, Scheme, SignedRequest, Verdict
from .sendcloud import SendcloudScheme

SCHEMES: dict[str, Scheme] = {scheme.name: scheme for scheme in (SendcloudScheme(),)}

__all__ = ["SCHEMES", "HeaderLookup", "PlainHeaders", "Scheme", "SignedRequest", "Verdict"]
