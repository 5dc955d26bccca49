"""``lanegw state check`` and ``lanegw state recover``: the gateway's state directory.

The daemon refuses to start on an inconsistent state (exit 2, gateway.state); ``check``
says what is wrong and what to do, ``recover`` repairs it explicitly, on a technician's
name, and commits the signed record that tells the station (gateway.state_recovery).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from gateway.cli.status import DEFAULT_CONFIG, ConfigOption
from gateway.config import LaneConfig, load_config
from gateway.errors import ConfigError
from gateway.sequence import SEQUENCE_FILE
from gateway.state import (
    KEY_FILE,
    OUTBOX_FILE,
    StateBusy,
    StateLock,
    StateReport,
    assess,
)
from gateway.state_recovery import RecoveryRefused, describe, recover

state_app = typer.Typer(
    help="The gateway's state directory: check it, recover it after a loss.",
    no_args_is_help=True,
)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def _config(path: Path) -> LaneConfig:
    try:
        return load_config(path)
    except ConfigError as exc:
        err.print(f"[red]{exc}[/]: run [bold]lanegw config check {path}[/]")
        raise typer.Exit(2) from None


def _facts(report: StateReport) -> dict[str, Any]:
    hw, outbox = report.high_water, report.outbox
    return {
        "state_dir": str(report.state_dir),
        "outbox": {
            "file": str(report.path(OUTBOX_FILE)),
            "present": outbox.present,
            "damaged": outbox.damaged,
            "last_seq": outbox.last_seq if outbox.present and not outbox.damaged else None,
            "waiting": outbox.depth,
        },
        "sequence": {
            "file": str(report.path(SEQUENCE_FILE)),
            "last_seq": hw.last_seq if hw else None,
            "waiting_from": hw.waiting_from if hw else None,
            "updated_at": hw.updated_at if hw else None,
            "damaged": report.high_water_damaged,
        },
        "key": {"file": str(report.path(KEY_FILE)), "public_key": report.public_key},
        "evidence": report.evidence_present,
    }


@state_app.command("check")
def check(
    config: ConfigOption = DEFAULT_CONFIG,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable report")] = False,
) -> None:
    """Check the state directory as the daemon does at start: exit 0 when it may start,
    3 (done, the result a failure) with each problem and what to do when it would refuse.

    Example: [bold]lanegw state check -c /etc/lanegw/lane.yaml[/]
    """
    lane = _config(config)
    report = assess(lane.state_dir)
    running = StateLock(lane.state_dir, "lanegw state check").held_elsewhere()
    if as_json:
        problems = [
            {"code": p.code, "file": str(p.file), "message": p.message, "remedy": p.remedy}
            for p in report.problems
        ]
        body = {"ok": report.ok, "in_use_by": running, **_facts(report), "problems": problems}
        print(json.dumps(body, indent=2, ensure_ascii=False))
    else:
        _print_report(report, running)
    if not report.ok:
        raise typer.Exit(3)


def _print_report(report: StateReport, running: str | None) -> None:
    facts = _facts(report)
    table = Table("file", "state", title=str(report.state_dir), title_justify="left")
    outbox, hw = facts["outbox"], facts["sequence"]
    if not outbox["present"]:
        table.add_row(OUTBOX_FILE, "missing or empty")
    elif outbox["damaged"]:
        table.add_row(OUTBOX_FILE, f"damaged: {outbox['damaged']}")
    else:
        table.add_row(OUTBOX_FILE, f"last seq {outbox['last_seq']}, {outbox['waiting']} waiting")
    if hw["damaged"]:
        table.add_row(SEQUENCE_FILE, f"damaged: {hw['damaged']}")
    else:
        table.add_row(SEQUENCE_FILE, "missing" if hw["last_seq"] is None else
                      f"last seq {hw['last_seq']} (written {hw['updated_at']})")  # fmt: skip
    table.add_row(KEY_FILE, report.public_key or ("present" if report.key_present else "missing"))
    table.add_row("evidence/", "documents present" if report.evidence_present else "empty")
    out.print(table)
    if running:
        out.print(f"[yellow]in use by {running}[/]")
    if report.ok:
        out.print("[green]✓[/] consistent: the daemon may start")
        return
    for problem in report.problems:
        out.print(f"[red]✗ {problem.code}[/] {problem.file}: {problem.message}.")
        out.print(f"    {problem.remedy}", highlight=False)


@state_app.command("recover")
def recover_command(
    technician: Annotated[str, typer.Option(help="who recovers (goes into the record)")],
    accept_loss: Annotated[
        bool,
        typer.Option(
            "--accept-loss",
            help="confirm that records not yet delivered may be lost, and that the station"
            " will be told so in a signed record",
        ),
    ] = False,
    config: ConfigOption = DEFAULT_CONFIG,
    last_seq: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="the gateway's last seq as the station shows it (only asked for when"
            " the outbox and sequence.json are both gone)",
        ),
    ] = None,
    note: Annotated[str | None, typer.Option(help="free text for the record")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable result")] = False,
) -> None:
    """Repair an inconsistent state directory (the daemon stopped): damaged files are
    set aside, never deleted; numbering continues after the last seq ever produced; the
    next record, of kind [bold]recovery[/], states what was lost.

    Example: [bold]lanegw state recover --accept-loss --technician "Li Wei"
    -c /etc/lanegw/lane.yaml[/]
    """
    if not technician.strip():
        err.print("[red]--technician must name who recovers[/]")
        raise typer.Exit(2)
    lane = _config(config)
    if not accept_loss:
        err.print(
            "[red]a recovery may lose records that were not delivered: run"
            " [bold]lanegw state check[/] first, then repeat with --accept-loss[/]"
        )
        raise typer.Exit(2)
    try:
        done = recover(lane, technician.strip(), last_seq, note)
    except (StateBusy, RecoveryRefused) as exc:  # the daemon runs, or it cannot be done
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None
    record = done.record
    if as_json:
        body = {
            "recovered": done.needed,
            "problems": done.problems,
            "kept_aside": [str(p) for p in done.kept_aside],
            "new_public_key": done.new_public_key,
            "record": None if record is None else json.loads(record.model_dump_json()),
        }
        print(json.dumps(body, indent=2, ensure_ascii=False))
        return
    if record is None or record.recovery is None:
        out.print("[green]✓[/] the state is consistent: nothing to recover")
        return
    out.print(f"[green]✓[/] recovered: {describe(record.recovery)}")
    out.print(f"  recovery record: seq {record.seq}, id {record.record_id} (sent at next start)")
    for path in done.kept_aside:
        out.print(f"  kept aside: {path}")
    if done.new_public_key:
        out.print(
            f"  [yellow]new signing key: tell the station to trust {lane.client_id}: "
            f'"{done.new_public_key}"[/] (trust.keys; see [bold]lanegw key[/])'
        )
