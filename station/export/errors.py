"""The export's error."""

from __future__ import annotations

from gateway.errors import GatewayError


class ExportError(GatewayError):
    """Records that cannot be exported as one inspection; the message says why."""
