"""``lanegw station``: run the receiver, show what it stored and alarmed, export an
inspection for the regulator's upload client (docs/station.md)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.table import Table

from gateway.cli.common import exit_with_problems, run_daemon
from gateway.errors import ConfigError, GatewayError
from station.config import StationConfig, load_station_config
from station.status import StationStatus, read_status, resolve_alarm
from station.store import RecordStore
from station.store.db import sqlite_path

station_app = typer.Typer(
    help="The station server: receive, verify, store and acknowledge records; live page.",
    no_args_is_help=True,
)


def _add_flow_commands() -> None:
    from station.flow.cli import user_app

    station_app.add_typer(user_app, name="user")


_add_flow_commands()
out = Console()
err = Console(stderr=True)

ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="station config YAML")]
DEFAULT_CONFIG = Path("/etc/lanegw/station.yaml")


def _config(path: Path) -> StationConfig:
    try:
        return load_station_config(path)
    except ConfigError as exc:
        exit_with_problems(exc, err)


def _sqlite_must_exist(config: StationConfig) -> None:
    """Reading commands never create a database: a wrong path is said plainly."""
    path = sqlite_path(config.database.url)
    if path is not None and not path.exists():
        err.print(f"[red]no database at {path}: has the receiver run with this config?[/]")
        raise typer.Exit(1)


async def _with_store(config: StationConfig, job: Any) -> Any:
    store = await RecordStore.open(
        config.database.url, f"{config.client_id}-cli", config.database.partitions
    )
    try:
        return await job(store)
    finally:
        await store.close()


def _run_job(config: StationConfig, job: Any) -> Any:
    _sqlite_must_exist(config)
    try:
        return asyncio.run(_with_store(config, job))
    except GatewayError as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None


@station_app.command()
def run(
    config: ConfigOption = DEFAULT_CONFIG,
    log_format: Annotated[str, typer.Option(help="auto, json or console")] = "auto",
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING")] = "INFO",
) -> None:
    """Run the receiver (and the live page) until SIGTERM/SIGINT.

    Example: [bold]lanegw station run --config /etc/lanegw/station.yaml[/]
    """
    from station.app import run_station

    station = _config(config)
    run_daemon(lambda: run_station(station), log_format, log_level, err)


@station_app.command()
def check(
    config: ConfigOption = DEFAULT_CONFIG,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Check a station config: its problems with their lines, then the database and the
    broker, tried. Exit 2 for a bad config, 1 when something cannot be reached.

    Example: [bold]lanegw station check -c /etc/lanegw/station.yaml[/]
    """
    from station.preflight import preflight

    checks = asyncio.run(preflight(_config(config)))
    if as_json:
        print(json.dumps([{"name": c.name, "ok": c.ok, "detail": c.detail} for c in checks]))
    else:
        for c in checks:
            out.print(
                f"{'[green]✓' if c.ok else '[red]✗'}[/] {c.name}: {c.detail}", highlight=False
            )
    if not all(c.ok for c in checks):
        raise typer.Exit(1)


@station_app.command()
def status(
    config: ConfigOption = DEFAULT_CONFIG,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Gateways, their records and keys, and the open alarms. Exit 1 if any alarm is open.

    Example: [bold]lanegw station status -c /etc/lanegw/station.yaml[/]
    """
    station = _config(config)
    report: StationStatus = _run_job(station, read_status)
    if as_json:
        print(json.dumps(report.to_json(), indent=2, ensure_ascii=False))
    else:
        _print_status(report, ZoneInfo(station.timezone))
    if report.open_alarms:
        raise typer.Exit(1)


def _print_status(report: StationStatus, zone: ZoneInfo) -> None:
    table = Table("lane", "gateway", "state", "records", "last seq", "last record", "key")
    for g in report.gateways:
        state = "[green]online[/]" if g.online else "[dim]offline[/]"
        records = f"{g.records}" + (f" [red]({g.suspect} suspect)[/]" if g.suspect else "")
        key = f"{g.key}… ({g.key_source})" if g.key else "[red]none[/]"
        last = local_time(g.last_received, zone)
        table.add_row(
            g.lane or "-", g.gateway_id, state, records, str(g.last_seq or "-"), last, key
        )
    out.print(table)
    if not report.open_alarms:
        out.print("[green]✓ no open alarms[/]")
        return
    alarms = Table("id", "kind", "lane", "gateway", "seq", "detail", "seen", title_justify="left")
    alarms.title = f"[red]{report.open_alarms} open alarm(s)[/]"
    for a in report.alarms:
        seq = "-" if a.seq is None else f"{a.seq}" + (f"..{a.seq_last}" if a.seq_last else "")
        seen = f"{local_time(a.first_seen, zone)} ×{a.occurrences}"
        row = (a.lane or "-", a.gateway_id or "-", seq, a.detail, seen)
        alarms.add_row(a.id, f"[red]{a.kind}[/]", *row)
    out.print(alarms)


@station_app.command()
def inspections(
    config: ConfigOption = DEFAULT_CONFIG,
    lane: Annotated[str | None, typer.Option(help="one lane only")] = None,
    plate: Annotated[str | None, typer.Option(help="one vehicle only, e.g. 粤A12345")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="how many")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """The latest inspections stored: lane, plate, items, verdict of the summary, when
    (station time, with its zone).

    Example: [bold]lanegw station inspections --lane L1 --limit 5[/];
    [bold]lanegw station inspections --plate 粤A12345[/]
    """
    from station.inspections import recent_inspections

    station = _config(config)
    lines = _run_job(station, lambda store: recent_inspections(store, limit, lane, plate))
    if as_json:
        print(json.dumps([asdict(line) for line in lines], indent=2, ensure_ascii=False))
        return
    zone = ZoneInfo(station.timezone)
    table = Table("inspection", "lane", "plate", "items", "verdict", "first record", "last record")
    colours = {"pass": "green", "fail": "red"}
    for i in lines:
        verdict = f"[{colours.get(i.verdict or '', 'yellow')}]{i.verdict or 'in progress'}[/]"
        if i.suspect:
            verdict += f" [red]({i.suspect} suspect)[/]"
        first, last = local_time(i.first_received, zone), local_time(i.last_received, zone)
        table.add_row(i.inspection_id, i.lane, i.plate or "-", str(i.items), verdict, first, last)
    out.print(table)


def local_time(stored: str | None, zone: ZoneInfo) -> str:
    """A stored UTC time in the station's zone, with its offset: 2026-11-28 20:01:02 +08:00."""
    if not stored:
        return "-"
    try:
        moment = datetime.fromisoformat(stored)
    except ValueError:
        return stored
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    local = moment.astimezone(zone)
    offset = local.strftime("%z")
    return f"{local:%Y-%m-%d %H:%M:%S} {offset[:3]}:{offset[3:]}"


@station_app.command()
def resolve(
    alarm: Annotated[str, typer.Argument(help="the alarm's id, as status shows it")],
    note: Annotated[str, typer.Option(help="what was found (kept with the alarm)")],
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Mark an alarm reviewed: it leaves the open alarms, and stays with its evidence.

    Example: [bold]lanegw station resolve 3f9a0c1e --note "cable swapped on L2, record resent"[/]
    """
    kind = _run_job(_config(config), lambda store: resolve_alarm(store, alarm, note))
    if kind is None:
        err.print(f"[red]no open alarm {alarm}: see lanegw station status[/]")
        raise typer.Exit(1)
    out.print(f"[green]✓[/] {kind} alarm {alarm} resolved")


@station_app.command()
def export(
    inspection: Annotated[str, typer.Option("--inspection", "-i", help="inspection id (jylsh)")],
    config: ConfigOption = DEFAULT_CONFIG,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="file (default stdout)")
    ] = None,
    include_suspect: Annotated[
        bool, typer.Option(help="export records that break the chain too (marked)")
    ] = False,
) -> None:
    """An inspection's records in the regulator's item layout, as JSON.

    Example: [bold]lanegw station export -i 44010012026112901 -o upload.json[/]
    """
    from station.export import ExportError, export_inspection

    station = _config(config)
    stored: list[tuple[str, dict[str, Any]]] = _run_job(
        station, lambda store: store.inspection_records(inspection)
    )
    suspect = [r["record_id"] for s, r in stored if s == "suspect"]
    if suspect and not include_suspect:
        err.print(
            f"[red]{len(suspect)} record(s) of {inspection} break the hash chain "
            f"({', '.join(suspect)}): see lanegw station status; --include-suspect exports "
            "them anyway[/]"
        )
        raise typer.Exit(1)
    try:
        document = export_inspection([r for _, r in stored], tz=station.timezone)
    except ExportError as exc:
        err.print(f"[red]{inspection}: {exc}[/]")
        raise typer.Exit(1) from None
    if suspect:
        document["suspect_record_ids"] = suspect
    text = json.dumps(document, indent=2, ensure_ascii=False)
    if output is None:
        print(text)
        return
    output.write_text(text + "\n", encoding="utf-8")
    err.print(f"wrote {output}")


@station_app.command()
def key(config: ConfigOption = DEFAULT_CONFIG) -> None:
    """Print the station's ack-signing public key, as the line for each lane's config.

    The key file is [bold]trust.ack_key_file[/]; it is created (0600) if it is not there
    yet. Lanes that list the key under [bold]mqtt.ack_keys[/] delete a record only on an
    ack the station signed. Example: [bold]lanegw station key -c /etc/lanegw/station.yaml[/]
    """
    from gateway.integrity import load_or_create_key, public_key_text

    station = _config(config)
    path = station.trust.ack_key_file
    if path is None:
        err.print("[red]trust.ack_key_file is not set: acks go out unsigned[/]")
        raise typer.Exit(2)
    try:
        private = load_or_create_key(path)
    except (GatewayError, OSError) as exc:
        err.print(f"[red]{path}: {exc}[/]")
        raise typer.Exit(2) from None
    print(f'ack_keys: ["{public_key_text(private.public_key())}"]   # under mqtt: in lane.yaml')


# the regulator hand-off's commands (docs/regulator.md)
from station.upload.cli import upload, uploads  # noqa: E402

station_app.command()(uploads)
station_app.command()(upload)
