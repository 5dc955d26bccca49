"""How a daemon that refuses to start says so, and with which exit code.

Shared by the lean ``lanegw run`` launcher and the Typer commands (``station run``,
``region run``), so both speak alike: no Typer or Rich here, the launcher must not load them.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Literal

from gateway.errors import GatewayError
from gateway.portlock import PortBusy
from gateway.state import StateBusy

#: what a human must fix: systemd does not restart it (RestartPreventExitStatus=2)
EXIT_START_REFUSED = 2
#: what may clear by itself (a port or the state directory held by a tool): EX_TEMPFAIL
EXIT_TEMPFAIL = 75


def exit_code(exc: GatewayError) -> int:
    """2 for what needs a human, 75 for what systemd may try again."""
    return EXIT_TEMPFAIL if isinstance(exc, (PortBusy, StateBusy)) else EXIT_START_REFUSED


def report_refusal(exc: GatewayError, log_format: Literal["json", "console"]) -> int:
    """Print why the daemon did not start on stderr and return its exit code. In JSON
    log format the refusal is one JSON line, like every other line of the daemon."""
    code = exit_code(exc)
    if log_format == "json":
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        line = {"event": "start_refused", "level": "error", "error": str(exc),
                "exit": code, "timestamp": now}  # fmt: skip
        print(json.dumps(line, ensure_ascii=False), file=sys.stderr)
    else:
        red, reset = ("\x1b[31m", "\x1b[0m") if sys.stderr.isatty() else ("", "")
        print(f"{red}{exc}{reset}", file=sys.stderr)
    return code
