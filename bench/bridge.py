"""The station broker's bridge to the regional broker, as mosquitto config lines (the
options of config/mosquitto/station-bridge.conf, with loopback addresses and short timers).

A station's mosquitto bridges its lanes' ``results`` and ``state`` out and the lanes'
``ack`` back in, at QoS 1, in a persistent session (``cleansession false``): while the WAN
is down the station broker queues what goes out (its queue survives a restart with
``persistence true``), and the regional broker queues the acks coming back. The bridge
sees nothing else of the station (commands, progress, telemetry stay local).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class BridgeLogin:
    """How the bridge logs in to a regional broker with TLS and passwords."""

    ca_file: Path
    username: str
    password: str


def bridge_options(
    station: str,
    region_port: int,
    root: str = "lanegw",
    login: BridgeLogin | None = None,
    keepalive_s: int = 10,
    restart_s: tuple[int, int] = (1, 2),
) -> list[tuple[str, str]]:
    """(option, value) of one bridge, in the order mosquitto reads them."""
    options = [
        ("connection", "region"),
        ("address", f"127.0.0.1:{region_port}"),
        ("bridge_protocol_version", "mqttv311"),
        ("cleansession", "false"),
        ("remote_clientid", f"bridge-{station}"),
        ("local_clientid", f"bridge-{station}-local"),
        ("try_private", "true"),
        ("bridge_attempt_unsubscribe", "false"),
        ("notifications", "true"),
        ("notifications_local_only", "true"),
        ("keepalive_interval", str(keepalive_s)),
        ("restart_timeout", f"{restart_s[0]} {restart_s[1]}"),
        ("start_type", "automatic"),
        ("topic", f"{root}/{station}/+/results out 1"),
        ("topic", f"{root}/{station}/+/state out 1"),
        ("topic", f"{root}/{station}/+/ack in 1"),
    ]
    if login is not None:
        options += [
            ("bridge_cafile", str(login.ca_file)),
            ("bridge_tls_version", "tlsv1.2"),
            ("remote_username", login.username),
            ("remote_password", login.password),
        ]
    return options


def config_text(options: list[tuple[str, str]]) -> str:
    """Options as mosquitto config lines."""
    return "".join(f"{name} {value}\n" for name, value in options)
