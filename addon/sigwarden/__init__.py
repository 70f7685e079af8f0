"""sigwarden: a sidecar reverse proxy that verifies webhook signatures."""

__version__ = "0.1.0"
