"""structlog setup: JSON lines for journald, a readable console format in a terminal.

Our own events go through structlog to stdout. The libraries below us (asyncio, paho,
aiomqtt, pymodbus) speak through the stdlib ``logging``: their records are rendered by
the same processors (``structlog.stdlib.ProcessorFormatter``) on stderr, so in JSON
mode every line the daemon writes is one JSON object, a library's traceback included
(as ``exception``: frames without their locals, which may hold secrets; never as bare
lines). An uncaught exception (``sys.excepthook``,
``threading.excepthook``) and warnings (``logging.captureWarnings``) take the same road.
"""

from __future__ import annotations

import logging
import sys
import threading
from types import TracebackType
from typing import Literal

import structlog

LogFormat = Literal["auto", "json", "console"]


def configure_logging(fmt: LogFormat = "auto", level: str = "INFO") -> Literal["json", "console"]:
    """Configure structlog and the stdlib loggers of our dependencies once per process;
    returns the format chosen ("auto": console on a terminal, else JSON)."""
    resolved: Literal["json", "console"] = (
        ("console" if sys.stderr.isatty() else "json") if fmt == "auto" else fmt
    )
    renderer: structlog.types.Processor = (
        structlog.dev.ConsoleRenderer()
        if resolved == "console"
        else structlog.processors.JSONRenderer()
    )
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    tracebacks: structlog.types.Processor = (
        # frames without their locals: a local may hold a secret (a password, a key)
        structlog.processors.ExceptionRenderer(
            structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
        )
        if resolved == "json"
        else _passthrough
    )
    structlog.configure(
        processors=[*shared, tracebacks, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=True,
    )
    _route_stdlib(shared, tracebacks, renderer)
    return resolved


def _route_stdlib(
    shared: list[structlog.types.Processor],
    tracebacks: structlog.types.Processor,
    renderer: structlog.types.Processor,
) -> None:
    """paho/pymodbus/asyncio log through stdlib logging: warnings and up, rendered by
    structlog's processors, on stderr."""
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            tracebacks,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_thread_uncaught


def _log_uncaught(
    kind: type[BaseException], value: BaseException, tb: TracebackType | None
) -> None:
    logging.getLogger("lanegw").critical("uncaught_exception", exc_info=(kind, value, tb))


def _log_thread_uncaught(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is None:
        return
    logging.getLogger("lanegw").critical(
        "uncaught_exception_in_thread %s",
        getattr(args.thread, "name", "?"),
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
    )


def _passthrough(
    _logger: object, _name: str, event: structlog.types.EventDict
) -> structlog.types.EventDict:
    return event
