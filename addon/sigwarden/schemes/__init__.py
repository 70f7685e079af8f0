"""The registry of signature schemes: a route's `scheme` names one of these.

A new scheme is one module implementing `Scheme` (base.py) and one line here.
"""

from __future__ import annotations

from .base import HeaderLookup, OptionError, PlainHeaders, Scheme, SignedRequest, Verdict
from .generic_hmac import HmacScheme
from .presets import GITHUB, SHOPIFY, STANDARD_WEBHOOKS, STRIPE
from .sendcloud import SendcloudScheme
from .token import TokenScheme

SCHEMES: dict[str, Scheme] = {
    scheme.name: scheme
    for scheme in (
        SendcloudScheme(),
        TokenScheme(),
        HmacScheme("hmac"),
        GITHUB,
        STRIPE,
        SHOPIFY,
        STANDARD_WEBHOOKS,
    )
}

__all__ = ["SCHEMES", "HeaderLookup", "OptionError", "PlainHeaders", "Scheme", "SignedRequest", "Verdict"]
