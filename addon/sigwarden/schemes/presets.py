"""Providers' webhook signatures as configurations of the generic HMAC scheme.

Each preset fixes what the provider documents and lets a route change only what
the provider lets its users choose (the timestamp tolerance). The tests check
each one against the provider's published vectors.
"""

from __future__ import annotations

from .generic_hmac import DEFAULT_TOLERANCE, HmacScheme

# GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`.
GITHUB = HmacScheme(
    "github",
    {"header": "X-Hub-Signature-256", "algorithm": "sha256", "encoding": "hex", "prefix": "sha256="},
    option_keys=(),
)

# Stripe: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>…][,v0=…]` over `<t>.<body>`; the whole
# `whsec_…` string is the key. Several v1 entries appear while a secret is rolled.
STRIPE = HmacScheme(
    "stripe",
    {
        "header": "Stripe-Signature",
        "algorithm": "sha256",
        "encoding": "hex",
        "separator": ",",
        "signature_key": "v1",
        "timestamp_key": "t",
        "signed_content": "{timestamp}.{body}",
        "tolerance": DEFAULT_TOLERANCE,
    },
    option_keys=("tolerance",),
)

# Shopify: `X-Shopify-Hmac-Sha256: <base64 HMAC-SHA256 of the body>`, keyed by the app's client secret.
SHOPIFY = HmacScheme(
    "shopify",
    {"header": "X-Shopify-Hmac-Sha256", "algorithm": "sha256", "encoding": "base64"},
    option_keys=(),
)

# Standard Webhooks (standardwebhooks.com, Svix): `webhook-signature: v1,<base64> [v1,<base64> …]`
# over `<webhook-id>.<webhook-timestamp>.<body>`; the key is the base64 after `whsec_`.
STANDARD_WEBHOOKS = HmacScheme(
    "standard-webhooks",
    {
        "header": "webhook-signature",
        "algorithm": "sha256",
        "encoding": "base64",
        "prefix": "v1,",
        "separator": " ",
        "timestamp_header": "webhook-timestamp",
        "signed_content": "{header:webhook-id}.{timestamp}.{body}",
        "tolerance": DEFAULT_TOLERANCE,
        "secret_encoding": "base64",
        "secret_prefix": "whsec_",
    },
    option_keys=("tolerance",),
)
