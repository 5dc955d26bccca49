"""The ``lanegw`` launcher: ``lanegw run`` starts the daemon without the CLI's imports.

The daemon runs for months on a small edge box, so it imports only what a lane uses: not
Typer, Rich, the station server or the other commands' modules (about 20 MB of resident
memory together, docs/performance.md). This module reads ``lanegw run`` with the options
the Typer command takes (``--config/-c``, ``--log-format``, ``--log-level``); anything
else, anything it does not understand, ``--help``, and a config with problems go to the
Typer app (``gateway.cli.main``), so every message and exit code stays the CLI's own.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

#: the values ``run`` accepts without a message (others go to the Typer command)
LOG_FORMATS: Final = ("auto", "json", "console")
LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
#: what structlog imports only to draw tracebacks in colour when it is installed (Rich,
#: with Pygments: 5 MB) or to support greenlets (only there when a test tool installed it)
OPTIONAL_FOR_LOGS: Final = ("rich", "greenlet")
#: the options of ``run`` (gateway/cli/main.py) and the field each sets
_FIELDS: Final = {
    "--config": "config",
    "-c": "config",
    "--log-format": "log_format",
    "--log-level": "log_level",
}


@dataclass(frozen=True)
class RunArgs:
    """``lanegw run``'s options, as the Typer command would have read them."""

    config: Path
    log_format: str = "auto"
    log_level: str = "INFO"


def parse_run(argv: Sequence[str]) -> RunArgs | None:
    """The options of a plain ``run`` command line; None for anything else."""
    if not argv or argv[0] != "run":
        return None
    values: dict[str, str] = {}
    rest = list(argv[1:])
    while rest:
        name, value = _split(rest.pop(0))
        field = _FIELDS.get(name)
        if field is None:
            return None  # --help, --, an unknown option, an argument: the CLI answers
        if value is None:
            if not rest:
                return None
            value = rest.pop(0)
        if field in values or not value or value.startswith("-"):
            return None  # repeated, empty or option-like: unusual, the CLI judges it
        values[field] = value
    if "config" not in values:
        return None
    args = RunArgs(
        Path(values["config"]),
        values.get("log_format", "auto"),
        values.get("log_level", "INFO"),
    )
    if args.log_format not in LOG_FORMATS or args.log_level.upper() not in LOG_LEVELS:
        return None
    return args


def _split(word: str) -> tuple[str, str | None]:
    """An option word as click reads it: ``--name=value``, ``-cVALUE`` or a bare name."""
    if word.startswith("--"):
        name, sep, value = word.partition("=")
        return name, value if sep else None
    if word.startswith("-c") and len(word) > 2:
        return "-c", word[2:]
    return word, None


@contextlib.contextmanager
def _absent(names: Sequence[str]) -> Iterator[None]:
    """While inside, importing one of ``names`` (not yet imported) fails as if missing."""
    blocked = [name for name in names if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # type: ignore[assignment]  # the import system's "missing"
    try:
        yield
    finally:
        for name in blocked:
            if sys.modules.get(name, ...) is None:
                del sys.modules[name]


def _import_structlog_lean() -> None:
    """Import structlog as a lane has it: plain tracebacks, no Rich or greenlet support."""
    with _absent(OPTIONAL_FOR_LOGS):
        import structlog  # noqa: F401 (imported here first: every later import gets this one)


def run_lean(args: RunArgs) -> bool:
    """Run the daemon; False (nothing started) when the config has problems to report."""
    _import_structlog_lean()
    from gateway.config import load_config
    from gateway.errors import ConfigError, GatewayError
    from gateway.logs import LogFormat, configure_logging
    from gateway.refusal import report_refusal

    try:
        lane = load_config(args.config)
    except ConfigError:
        return False  # the CLI loads it again and lists every problem with its line
    fmt: LogFormat = args.log_format  # type: ignore[assignment]  # checked by parse_run
    resolved = configure_logging(fmt, args.log_level.upper())

    import asyncio

    from gateway.app import run_gateway

    try:
        asyncio.run(run_gateway(lane))
    except GatewayError as exc:  # refused to start: as the CLI says it, without Rich
        sys.exit(report_refusal(exc, resolved))
    return True


def main(argv: Sequence[str] | None = None) -> None:
    """The console script ``lanegw`` (and ``python -m gateway``)."""
    args = parse_run(sys.argv[1:] if argv is None else argv)
    if args is not None:
        try:
            if run_lean(args):
                return
        except KeyboardInterrupt:  # before the daemon's own signal handling: as click says
            print("Aborted!", file=sys.stderr)
            sys.exit(1)
    from gateway.cli.main import app

    app(args=None if argv is None else list(argv))
