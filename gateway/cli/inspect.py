"""``lanegw inspect``: start or abort an inspection by hand (manual runs, benches)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from gateway.cli.common import EXIT_USAGE, ask_daemon
from gateway.cli.status import DEFAULT_CONFIG, ConfigOption, err, state_dir_of

out = Console()
inspect_app = typer.Typer(help="Start or abort an inspection by hand.", no_args_is_help=True)


def _send(config: Path, command: str, args: dict[str, Any]) -> dict[str, Any]:
    """The daemon's result (exit 1 with its reason when it refuses)."""
    return ask_daemon(state_dir_of(config), command, args, err)


def _queued(result: dict[str, Any]) -> str:
    ahead = result.get("ahead", 0)
    when = "starts now" if ahead == 0 else f"{ahead} inspection(s) ahead of it"
    items = ", ".join(result.get("items", []))
    return (
        f"[green]✓[/] inspection {result['inspection_id']} queued for "
        f"[bold]{result.get('plate', '?')}[/] ({items}): {when}"
    )


@inspect_app.command("start")
def start(
    inspection_id: Annotated[str, typer.Option(help="17 characters")],
    plate: Annotated[str, typer.Option()],
    vin: Annotated[str, typer.Option()],
    items: Annotated[str, typer.Option(help="comma separated, e.g. B1,B2,B0,H1,H4")],
    category: Annotated[str, typer.Option()] = "passenger_car",
    inspection_type: Annotated[str, typer.Option()] = "in_use",
    fuel: Annotated[str, typer.Option()] = "petrol",
    axles: Annotated[int, typer.Option()] = 2,
    curb_mass_kg: Annotated[int, typer.Option()] = 1400,
    gross_mass_kg: Annotated[int, typer.Option()] = 1850,
    headlamp_system: Annotated[int, typer.Option()] = 2,
    emission_method: Annotated[str, typer.Option()] = "none",
    emission_limit_set: Annotated[str, typer.Option()] = "a",
    attempt: Annotated[int, typer.Option()] = 1,
    order_file: Annotated[Path | None, typer.Option(help="a whole order as JSON instead")] = None,
    config: ConfigOption = DEFAULT_CONFIG,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Queue an inspection order on the running daemon (validated like a station order).

    Example: [bold]lanegw inspect start --inspection-id 44010012026112801 --plate 粤A12345
    --vin LSVAU2180N2183294 --items B1,B2,B0,H1,H4,S1[/]
    """
    if order_file is not None:
        try:
            order: dict[str, Any] = json.loads(order_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            err.print(f"[red]{order_file}: {exc}[/]")
            raise typer.Exit(EXIT_USAGE) from None
    else:
        order = {
            "inspection_id": inspection_id,
            "attempt": attempt,
            "plate": plate,
            "vin": vin,
            "category": category,
            "inspection_type": inspection_type,
            "fuel": fuel,
            "axle_count": axles,
            "curb_mass_kg": curb_mass_kg,
            "gross_mass_kg": gross_mass_kg,
            "headlamp_system": headlamp_system,
            "emission_method": emission_method,
            "emission_limit_set": emission_limit_set,
            "items": [i.strip() for i in items.split(",") if i.strip()],
        }
    result = _send(config, "inspect", order)
    if as_json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        out.print(_queued(result), highlight=False)


@inspect_app.command("abort")
def abort(
    inspection_id: Annotated[str, typer.Argument(help="the inspection to abort")],
    config: ConfigOption = DEFAULT_CONFIG,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Abort a running inspection (its current item ends as aborted) or drop a queued one.

    Example: [bold]lanegw inspect abort 44010012026112801[/]
    """
    result = _send(config, "abort", {"inspection_id": inspection_id})
    if as_json:
        print(json.dumps(result, ensure_ascii=False))
    elif result.get("was") == "queued":
        out.print(f"[green]✓[/] inspection {inspection_id} removed from the queue")
    else:
        out.print(
            f"[green]✓[/] inspection {inspection_id} aborted: its current item ends as "
            "aborted (reason: aborted by command), the others are not run"
        )
