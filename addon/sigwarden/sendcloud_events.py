"""Realistic Sendcloud webhook bodies, serialised the way Sendcloud does (Python json.dumps defaults)."""

from __future__ import annotations

import json
import time
from typing import Any

EVENTS = (
    "parcel_status_changed",
    "integration_connected",
    "integration_updated",
    "integration_deleted",
    "return_created",
)


def _integration(now_ms: int) -> dict[str, Any]:
    return {
        "id": 187436,
        "shop_name": "Fietsenwinkel Zoë",
        "shop_url": "https://shop.example.com",
        "system": "api",
        "failing_since": None,
        "last_fetch": "2026-11-28T09:12:44.000000+01:00",
        "last_updated_at": "2026-11-28T09:12:44.000000+01:00",
        "service_point_enabled": True,
        "service_point_carriers": ["postnl", "dhl"],
        "webhook_active": True,
        "webhook_url": "https://shop.example.com/webhooks/sendcloud",
    }


def _parcel(now_ms: int) -> dict[str, Any]:
    return {
        "id": 417295823,
        "name": "Zoë de Vries",
        "company_name": "",
        "address": "Stadhouderskade 10",
        "address_divided": {"street": "Stadhouderskade", "house_number": "10"},
        "city": "Amsterdam",
        "postal_code": "1072 AA",
        "country": {"iso_2": "NL", "iso_3": "NLD", "name": "Netherlands"},
        "email": "zoe@example.com",
        "telephone": "+31612345678",
        "tracking_number": "3SYZXG192833973",
        "tracking_url": "https://tracking.example.com/3SYZXG192833973",
        "status": {"id": 11, "message": "Delivered"},
        "order_number": "ORD-2026-00042",
        "weight": "1.250",
        "shipment": {"id": 8, "name": "PostNL Standard 0-23kg"},
        "carrier": {"code": "postnl"},
        "label": {"normal_printer": [], "label_printer": ""},
        "date_created": "28-11-2026 09:01:12",
        "date_updated": "28-11-2026 09:12:44",
        "external_order_id": "42",
        "external_shipment_id": "",
    }


def event_body(action: str, now_ms: int | None = None) -> bytes:
    """The body of one Sendcloud webhook of this action, as bytes ready to sign."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    body: dict[str, Any] = {"action": action, "timestamp": now_ms}
    if action == "parcel_status_changed":
        body["carrier_status_change_timestamp"] = now_ms - 60_000
        body["parcel"] = _parcel(now_ms)
    elif action.startswith("integration_"):
        body["integration"] = _integration(now_ms)
    elif action == "return_created":
        body["data"] = {
            "id": 90210,
            "brand_id": 311,
            "order_number": "ORD-2026-00042",
            "return_reason_id": 3,
            "paid_return": False,
            "delivery_choice": "drop_off_point",
            "refund_type": {"refund_type": "money"},
            "items": [
                {
                    "item_id": "5551",
                    "description": "Fietsbel, messing",
                    "quantity": 1,
                    "sku": "BEL-001",
                    "hs_code": "83061000",
                    "return_reason_id": 3,
                }
            ],
        }
    else:
        raise ValueError(f"unknown event {action!r} (known: {', '.join(EVENTS)})")
    return json.dumps(body).encode()
