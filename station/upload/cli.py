"""``lanegw station uploads`` and ``lanegw station upload --retry ID`` (registered by
``station.cli``): what was sent to the regulators, and a refused upload sent again."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from station.store import RecordStore
from station.upload.store import STATUSES, Upload, UploadStore

out = Console()
err = Console(stderr=True)
ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="station config YAML")]
DEFAULT_CONFIG = Path("/etc/lanegw/station.yaml")
COLOURS = {"accepted": "green", "refused": "red", "invalid": "red", "retrying": "yellow",
           "held": "yellow", "sending": "cyan", "queued": "white"}  # fmt: skip


def _run(config: Path, job: Any) -> Any:
    from station.cli import _config, _run_job

    return _run_job(_config(config), job)


def uploads(
    config: ConfigOption = DEFAULT_CONFIG,
    platform: Annotated[str | None, typer.Option(help="psb or env")] = None,
    status: Annotated[str | None, typer.Option(help=f"one of {', '.join(STATUSES)}")] = None,
    inspection: Annotated[str | None, typer.Option("--inspection", "-i", help="jylsh")] = None,
    lane: Annotated[str | None, typer.Option(help="one lane only")] = None,
    limit: Annotated[int, typer.Option(min=1, max=100_000, help="how many, newest first")] = 50,
    evidence: Annotated[
        bool, typer.Option(help="with every attempt's request and answer (--json)")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Uploads to the regulators' platforms: call, inspection, item, status, tries, the
    platform's key or its refusal. Exit 1 while any upload is refused or cannot be written.

    Example: [bold]lanegw station uploads --status refused[/]
    """
    if platform not in (None, "psb", "env"):
        err.print("[red]--platform is psb or env[/]")
        raise typer.Exit(2)
    if status is not None and status not in STATUSES:
        err.print(f"[red]--status is one of {', '.join(STATUSES)}[/]")
        raise typer.Exit(2)

    async def job(store: RecordStore) -> tuple[list[Upload], dict[str, int]]:
        up = UploadStore(store, "cli")
        await up.setup(starting=False)
        rows = await up.listing(platform=platform, status=status, inspection_id=inspection,
                                lane=lane, limit=limit, attempts=evidence)  # fmt: skip
        return rows, await up.counts()

    rows, counts = _run(config, job)
    if as_json:
        print(json.dumps({"counts": counts, "uploads": [r.to_json() for r in rows]},
                         indent=2, ensure_ascii=False))  # fmt: skip
    else:
        _print(rows, counts)
    if counts.get("refused") or counts.get("invalid"):
        raise typer.Exit(1)


def _print(rows: list[Upload], counts: dict[str, int]) -> None:
    table = Table("id", "platform", "call", "inspection", "item", "lane", "status", "tries",
                  "key / answer", "updated")  # fmt: skip
    for r in rows:
        colour = COLOURS.get(r.status, "white")
        answer = r.keystr if r.status == "accepted" else f"{r.code or ''} {r.message or ''}"
        table.add_row(r.upload_id, r.platform, r.call, r.inspection_id or "-", r.item_code or "-",
                      r.lane or "-", f"[{colour}]{r.status}[/]", str(r.tries),
                      (answer or "").strip()[:60], r.updated_at[:19])  # fmt: skip
    out.print(table)
    out.print("  ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "no uploads yet")


def upload(
    retry: Annotated[str, typer.Option("--retry", help="the upload's id, as uploads shows it")],
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Send a refused (or not yet written) upload again: the running uploader takes it at
    once. An accepted upload is never sent again.

    Example: [bold]lanegw station upload --retry 3f9a0c1e2b4d[/]
    """

    async def job(store: RecordStore) -> Upload | None:
        up = UploadStore(store, "cli")
        await up.setup(starting=False)
        return await up.retry(retry)

    found: Upload | None = _run(config, job)
    if found is None:
        err.print(f"[red]no upload {retry}: see lanegw station uploads[/]")
        raise typer.Exit(1)
    what = f"{found.call} of {found.inspection_id or found.chain} {found.item_code or ''}".strip()
    if found.status == "accepted":
        err.print(f"[red]{retry} ({what}) was accepted (key {found.keystr}): not sent again[/]")
        raise typer.Exit(1)
    if found.status in ("queued", "sending"):
        out.print(f"{retry} ({what}) is {found.status} already")
        return
    out.print(f"[green]✓[/] {retry} ({what}) queued again (was {found.status}: "
              f"{found.code or ''} {found.message or ''})")  # fmt: skip
