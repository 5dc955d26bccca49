"""``lanegw inspect``: start or abort an inspection by hand (manual runs, benches)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from gateway.cli.status import DEFAULT_CONFIG, ConfigOption, err, state_dir_of
from gateway.control import request

out = Console()
inspect_app = typer.Typer(help="Start or abort an inspection by hand.", no_args_is_help=True)


def _send(config: Path, command: str, args: dict[str, Any], as_json: bool) -> None:
    try:
        answer = asyncio.run(request(state_dir_of(config), command, args))
    except ConnectionError as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None
    if as_json:
        print(json.dumps(answer, ensure_ascii=False))
    elif answer.get("ok"):
        out.print(f"[green]✓[/] {json.dumps(answer['result'], ensure_ascii=False)}")
    else:
        err.print(f"[red]{answer.get('error')}[/]")
    if not answer.get("ok"):
        raise typer.Exit(1)


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
        order: dict[str, Any] = json.loads(order_file.read_text(encoding="utf-8"))
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
    _send(config, "inspect", order, as_json)


@inspect_app.command("abort")
def abort(
    inspection_id: Annotated[str, typer.Argument(help="the inspection to abort")],
    config: ConfigOption = DEFAULT_CONFIG,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Abort a running inspection (its current item ends as aborted) or drop a queued one.

    Example: [bold]lanegw inspect abort 44010012026112801[/]
    """
    _send(config, "abort", {"inspection_id": inspection_id}, as_json)
