"""``lanegw``: run the daemon, check a config, print schemas, run the demo.

Every command prints a clear message and exits non-zero on failure; none shows a
traceback for a user mistake.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from gateway.cli import calibrate as calibrate_cmd
from gateway.cli import maintenance as maintenance_cmd
from gateway.cli import monitor as monitor_cmd
from gateway.cli import probe as probe_cmd
from gateway.cli import status as status_cmd
from gateway.cli.common import EXIT_FAILED, exit_with_problems, run_daemon
from gateway.cli.inspect import inspect_app
from gateway.cli.state import state_app
from gateway.config import LaneConfig, load_config
from gateway.errors import ConfigError
from gateway.logs import configure_logging

app = typer.Typer(
    name="lanegw",
    help="Inspection-lane gateway: tester protocols in, judged result records out over MQTT.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
out = Console()
err = Console(stderr=True)
config_app = typer.Typer(help="Lane config files.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.command()(status_cmd.status)
app.command()(monitor_cmd.monitor)
app.command()(probe_cmd.probe)
app.command()(maintenance_cmd.check)
app.command()(maintenance_cmd.lockouts)
app.command()(calibrate_cmd.calibrate)
app.add_typer(inspect_app, name="inspect")
app.add_typer(state_app, name="state")
try:  # the station server is an extra: `pip install 'lane-gateway[station]'`
    from station.cli import station_app
except ImportError as exc:  # an edge box installs the gateway alone
    _missing = exc.name
    station_app = typer.Typer(help="The station server (needs the [station] extra).")

    @station_app.callback(invoke_without_command=True)
    def _station_missing() -> None:
        err.print(f"[red]{_missing} is not installed: pip install 'lane-gateway\\[station]'[/]")
        raise typer.Exit(2)


app.add_typer(station_app, name="station")


def _load_or_exit(path: Path) -> LaneConfig:
    try:
        return load_config(path)
    except ConfigError as exc:
        exit_with_problems(exc, err)


@config_app.command("check")
def config_check(
    file: Annotated[Path, typer.Argument(help="lane config YAML")],
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Validate a lane config: every problem with its field and line, or a lane summary.

    Example: [bold]lanegw config check /etc/lanegw/lane.yaml[/]
    """
    try:
        config = load_config(file)
    except ConfigError as exc:
        if as_json:
            problems = [
                {"field": p.field, "line": p.line, "message": p.message} for p in exc.problems
            ]
            out.print_json(json.dumps({"ok": False, "file": str(file), "problems": problems}))
            raise typer.Exit(2) from None
        _load_or_exit(file)
        return
    if as_json:
        out.print_json(
            json.dumps(
                {
                    "ok": True,
                    "file": str(file),
                    "station": config.station,
                    "lane": config.lane,
                    "devices": len(config.devices),
                }
            )
        )
        return
    out.print(f"[green]✓[/] {file}: station {config.station}, lane {config.lane}")
    table = Table("device", "class", "protocol", "bus", "url", "poll s")
    buses = {b.id: b for b in config.buses}
    for device in config.devices:
        bus = buses[device.bus]
        table.add_row(
            device.id,
            device.device_class.value,
            device.protocol,
            bus.id,
            bus.url,
            f"{device.poll_period_s:g}",
        )
    out.print(table)
    out.print(
        f"MQTT {config.mqtt.host}:{config.mqtt.port} (v{config.mqtt.protocol}, "
        f"delivery on {config.mqtt.delivery}), state in {config.state_dir}"
    )


@app.command()
def run(
    config: Annotated[
        Path, typer.Option("--config", "-c", envvar="LANEGW_CONFIG", help="lane config YAML")
    ],
    log_format: Annotated[str, typer.Option(help="auto, json or console")] = "auto",
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING")] = "INFO",
) -> None:
    """Run the gateway daemon until SIGTERM/SIGINT.

    Example: [bold]lanegw run --config /etc/lanegw/lane.yaml[/]
    """
    from gateway.app import run_gateway

    lane = _load_or_exit(config)
    run_daemon(lambda: run_gateway(lane), log_format, log_level, err)


@app.command()
def schema(
    name: Annotated[str | None, typer.Argument(help="one schema; all when omitted")] = None,
    export_dir: Annotated[Path | None, typer.Option("--export", help="write files here")] = None,
) -> None:
    """Print the JSON Schemas of the MQTT payloads, records, orders and config.

    Example: [bold]lanegw schema result-record[/]
    """
    from gateway.schemas import SCHEMA_MODELS, export, render

    if export_dir is not None:
        for path in export(export_dir):
            out.print(f"wrote {path}")
        return
    if name is None:
        out.print_json(json.dumps({n: json.loads(render(n)) for n in SCHEMA_MODELS}))
        return
    if name not in SCHEMA_MODELS:
        err.print(f"[red]unknown schema {name!r}; known: {', '.join(SCHEMA_MODELS)}[/]")
        raise typer.Exit(2)
    print(render(name), end="")


@app.command()
def verify(
    files: Annotated[list[Path], typer.Argument(help="JSON-lines files of records ('-' = stdin)")],
    key: Annotated[
        str | None,
        typer.Option(help="gateway public key (base64), if the stream has no birth message"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable report")] = False,
) -> None:
    """Check records for gaps, chain breaks, bad signatures and reordering.

    Example: [bold]mosquitto_sub -v -t 'lanegw/+/+/#' > capture.txt; lanegw verify capture.txt[/]
    """
    from gateway.verify import parse_lines
    from gateway.verify import verify as check

    lines: list[str] = []
    for path in files:
        try:
            text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
        except OSError as exc:
            err.print(f"[red]{path}: {exc.strerror}[/]")
            raise typer.Exit(2) from None
        lines.extend(text.splitlines())
    records, keys = parse_lines(lines)
    if not records:
        err.print("[red]no records found in the input[/]")
        raise typer.Exit(2)
    reports = check(records, keys, key)
    if as_json:
        print(json.dumps([dict(vars(r), ok=r.ok) for r in reports], indent=2))
    else:
        for r in reports:
            mark = "[green]✓[/]" if r.ok else "[red]✗[/]"
            out.print(
                f"{mark} {r.gateway_id}: {r.records} records, seq {r.first_seq}..{r.last_seq},"
                f" {r.duplicates} duplicates dropped"
            )
            for label, items in (
                ("missing seq", r.missing),
                ("chain broken at seq", r.chain_breaks),
                ("bad signature at seq", r.bad_signatures),
                ("out of order at seq", r.out_of_order),
                ("conflicting copies of", r.conflicts),
            ):
                if items:
                    out.print(f"    [red]{label}: {', '.join(map(str, items))}[/]")
            if r.unverified:
                out.print("    [yellow]signatures not checked: no public key (use --key)[/]")
    if not all(r.ok for r in reports):
        raise typer.Exit(EXIT_FAILED)


@app.command()
def key(
    config: Annotated[
        Path, typer.Option("--config", "-c", envvar="LANEGW_CONFIG", help="lane config YAML")
    ] = Path("/etc/lanegw/lane.yaml"),
) -> None:
    """Print this gateway's public key, as a line for the station's [bold]trust.keys[/].

    Example: [bold]lanegw key -c /etc/lanegw/lane.yaml[/]
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from gateway.integrity import public_key_text

    lane = _load_or_exit(config)
    path = lane.state_dir / "gateway.key"
    try:
        private = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError:
        err.print(f"[red]no key at {path} yet: the daemon creates it at its first start[/]")
        raise typer.Exit(1) from None
    except (OSError, ValueError) as exc:
        err.print(f"[red]{path}: {exc}[/]")
        raise typer.Exit(1) from None
    if not isinstance(private, Ed25519PrivateKey):
        err.print(f"[red]{path} is not an Ed25519 key[/]")
        raise typer.Exit(1)
    print(f'{lane.client_id}: "{public_key_text(private.public_key())}"')


@app.command()
def demo(
    duration: Annotated[float | None, typer.Option(help="exit by itself after N seconds")] = None,
    time_scale: Annotated[float, typer.Option(help="simulated lane speed (<1 is faster)")] = 0.3,
    web_port: Annotated[int, typer.Option(help="the live lane page's port")] = 8080,
) -> None:
    """Run a simulated station: two lanes of testers, their gateways, an embedded MQTT
    broker, the station receiver and its live lane page.

    Example: [bold]lanegw demo --duration 60[/]
    """
    if importlib.util.find_spec("amqtt") is None:  # the embedded broker is an extra
        err.print(
            "[red]amqtt (the demo's embedded MQTT broker) is not installed:"
            " pip install 'lane-gateway\\[station,demo]'[/]"
        )
        raise typer.Exit(2)
    from gateway.demo import run_demo

    configure_logging("json", "WARNING")
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how a demo is ended: exit 0
        asyncio.run(run_demo(out, duration, time_scale, web_port))
