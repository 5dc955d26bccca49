"""``lanegw status``: the running daemon, seen through its control socket (and the
options every command that talks to the daemon shares)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from gateway.cli.common import ask_daemon
from gateway.config import LaneConfig, load_config
from gateway.errors import ConfigError

out = Console()
err = Console(stderr=True)

ConfigOption = Annotated[
    Path,
    typer.Option(
        "--config",
        "-c",
        envvar="LANEGW_CONFIG",
        help="lane config (its state_dir locates the daemon); or set LANEGW_CONFIG",
    ),
]
DEFAULT_CONFIG = Path("/etc/lanegw/lane.yaml")
STATE_COLOURS = {"online": "green", "degraded": "yellow", "offline": "red", "starting": "dim"}


def lane_of(config: Path) -> LaneConfig:
    """The lane config at ``config`` (exit 2 with the reason if unusable)."""
    try:
        return load_config(config)
    except ConfigError as exc:
        err.print(f"[red]{exc}[/]: run [bold]lanegw config check {config}[/]")
        raise typer.Exit(2) from None


def state_dir_of(config: Path) -> Path:
    """The state directory named by a lane config (exit 2 with the reason if unusable)."""
    return lane_of(config).state_dir


def status(
    config: ConfigOption = DEFAULT_CONFIG,
    as_json: Annotated[bool, typer.Option("--json", help="the gateway-status JSON")] = False,
) -> None:
    """Lane, devices, buses, MQTT link and outbox of the running daemon.

    Example: [bold]lanegw status -c /etc/lanegw/lane.yaml --json[/]
    """
    snapshot = ask_daemon(state_dir_of(config), "status", {}, err)
    if as_json:
        print(json.dumps(snapshot, ensure_ascii=False, indent=2))
        return
    out.print(_status_view(snapshot))


def _status_view(s: dict[str, Any]) -> Group:
    link = "[green]connected[/]" if s["mqtt_connected"] else "[red]disconnected[/]"
    box = s["outbox"]
    alarm = " [bold red]ALARM: new inspections refused[/]" if box["alarm"] else ""
    used = 100.0 * box["bytes"] / box["max_bytes"] if box["max_bytes"] else 0.0
    oldest = f", oldest waiting {duration(box['oldest_age_s'])}" if box["depth"] else ""
    head = Text.from_markup(
        f"[bold]station {s['station']} lane {s['lane']}[/]  lanegw {s['version']}  "
        f"MQTT {link} ({s['mqtt_reconnects']} reconnects)\n"
        f"outbox: {box['depth']} records waiting, {size(box['bytes'])} of "
        f"{size(box['max_bytes'])} ({used:.1f} %){oldest}; last seq {box['last_seq']}{alarm}\n"
        f"{_inspection_line(s)}"
    )
    lockouts: dict[str, list[str]] = s.get("lockouts") or {}
    devices = Table("device", "class", "state", "last value", "failures", "why", title="devices")
    for d in s["devices"]:
        state, why = _device_state(d, lockouts.get(d["id"], []))
        age = "-" if d["last_value_age_s"] is None else f"{d['last_value_age_s']:.1f} s ago"
        devices.add_row(d["id"], d["device_class"], state, age, str(d["consecutive_failures"]), why)
    buses = Table("bus", "port", "last error", title="buses")
    for b in s["buses"]:
        buses.add_row(
            b["id"], "[green]open[/]" if b["open"] else "[red]closed[/]", b["last_error"] or ""
        )
    return Group(head, devices, buses)


def _device_state(device: dict[str, Any], locked: list[str]) -> tuple[str, str]:
    """The state cell and the reason cell: a locked device is never shown as plain online."""
    availability = device["availability"]
    colour = STATE_COLOURS.get(availability, "white")
    if locked:
        return f"[bold red]LOCKED[/] ([{colour}]{availability}[/])", "; ".join(locked)
    if device.get("held_for"):
        return f"[cyan]in use[/] ([{colour}]{availability}[/])", str(device["held_for"])
    return f"[{colour}]{availability}[/]", device["last_error"] or ""


def _inspection_line(s: dict[str, Any]) -> str:
    running = s.get("running")
    queued = f"; {s['queued_orders']} order(s) waiting" if s["queued_orders"] else ""
    if not running:
        return f"inspection: none running{queued}"
    item = running["item_code"] or "-"
    done, total = running["items_done"], len(running["items"])
    step = f": {running['message']}" if running["message"] else ""
    return (
        f"inspection [bold]{running['plate']}[/] ({running['inspection_id']}), "
        f"item {item} ({done} of {total} done), step {running['step'] or '-'}{step}{queued}"
    )


def size(count: float) -> str:
    """Bytes for people: 512 B, 3.4 KiB, 256.0 MiB."""
    if count < 1024:
        return f"{count:.0f} B"
    for unit in ("KiB", "MiB"):
        count /= 1024
        if count < 1024:
            return f"{count:.1f} {unit}"
    return f"{count / 1024:.1f} GiB"


def duration(seconds: float) -> str:
    """A wait for people: 42 s, 5 min, 3.2 h."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
