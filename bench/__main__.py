"""``python -m bench``: run the benchmark suite, print the table, write JSON (and a PNG).

Usage: python -m bench [--quick | --smoke] [--only polling,brake,serial,outbox,startup] [options]
Defaults are the full run documented in docs/performance.md (about 8 minutes);
``--quick`` is a short run of every case (about a minute), ``--smoke`` the smallest one
(every phase once, about 20 seconds: the test suite runs it so that the suite cannot rot).
A phase that fails is reported with its error (and the work directory is kept for its
logs); the other phases still run.
"""

from __future__ import annotations

import argparse
import datetime
import subprocess
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench import brake, outbox, polling, report, serial, startup
from bench.broker import Broker
from bench.proc import loadavg, machine
from bench.procs import REPO

PHASES = ("polling", "brake", "serial", "outbox", "startup")
TITLES = {
    "polling": "polling: lanegw and the bare loop",
    "brake": "brake stream",
    "serial": "serial line efficiency",
    "outbox": "outbox backlog drain",
    "startup": "start-up",
}


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="short run: about a minute")
    p.add_argument("--smoke", action="store_true", help="smallest run: every phase once, seconds")
    p.add_argument("--only", default=",".join(PHASES), help="phases, comma-separated")
    p.add_argument("--devices", default="1,8,32", help="device counts of the polling phase")
    p.add_argument("--periods-ms", default="100,20", help="poll periods of the polling phase")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds before each window")
    p.add_argument("--window", type=float, default=20.0, help="polling window, seconds")
    p.add_argument("--brake-s", type=float, default=60.0, help="brake stream length, seconds")
    p.add_argument("--brake-others", type=int, default=8, help="devices polled meanwhile")
    p.add_argument("--brake-period-ms", type=int, default=20, help="their poll period")
    p.add_argument("--serial-window", type=float, default=20.0)
    p.add_argument("--outbox", default="10000,100000", help="backlog sizes")
    p.add_argument("--outbox-modes", default="server_ack,puback")
    p.add_argument("--startup-repeats", type=int, default=5)
    p.add_argument("--json", type=Path, default=REPO / "artifacts" / "bench.json")
    p.add_argument("--plot", type=Path, default=REPO / "artifacts" / "bench.png")
    p.add_argument(
        "--broker-defaults",
        action="store_true",
        help="mosquitto without set_tcp_nodelay (its default; see docs/performance.md)",
    )
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = p.parse_args(argv)
    if args.quick:
        args.devices, args.periods_ms = "1,2", "100"
        args.warmup, args.window, args.serial_window = 0.5, 1.5, 1.5
        args.brake_s, args.brake_others, args.brake_period_ms = 1.5, 2, 100
        args.outbox, args.outbox_modes, args.startup_repeats = "300", "server_ack", 1
    if args.smoke:
        args.quick = True
        args.devices, args.periods_ms = "2", "100"
        args.warmup, args.window, args.serial_window = 0.3, 1.0, 1.0
        args.brake_s, args.brake_others, args.brake_period_ms = 1.0, 1, 100
        args.outbox, args.outbox_modes, args.startup_repeats = "100", "server_ack", 1
    return args


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return ""
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return out.stdout.strip() + ("+dirty" if dirty else "")


def _log(text: str) -> None:
    print(text, flush=True)


async def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Every chosen phase, against one mosquitto."""
    phases = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = set(phases) - set(PHASES)
    if unknown:
        raise SystemExit(f"unknown phases {sorted(unknown)}; known: {', '.join(PHASES)}")
    results: dict[str, Any] = {
        "meta": {
            **machine(),
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "commit": _git_commit(),
            "python": sys.version.split()[0],
            "quick": args.quick,
            "settings": {k: str(v) for k, v in vars(args).items()},
        }
    }
    broker = Broker(workdir, nodelay=not args.broker_defaults)
    broker.start()
    started = time.perf_counter()
    port = broker.port
    runs: dict[str, Callable[[], Awaitable[Any]]] = {
        "polling": lambda: polling.run(
            workdir,
            port,
            _ints(args.devices),
            [ms / 1000 for ms in _ints(args.periods_ms)],
            args.warmup,
            args.window,
            _log,
        ),
        "brake": lambda: brake.run(
            workdir,
            port,
            args.brake_s,
            args.brake_others,
            args.brake_period_ms / 1000,
            min(10.0, max(1.0, args.brake_s / 6)),
            _log,
        ),
        "serial": lambda: serial.run(workdir, port, args.warmup, args.serial_window, _log),
        "outbox": lambda: outbox.run(
            workdir,
            port,
            _ints(args.outbox),
            [m for m in args.outbox_modes.split(",") if m],
            _log,
        ),
        "startup": lambda: startup.run(workdir, port, args.startup_repeats, _log),
    }
    errors: dict[str, str] = {}
    try:
        for phase in PHASES:
            if phase not in phases:
                continue
            _log(f"== {TITLES[phase]}")
            try:
                results[phase] = await runs[phase]()
            except Exception as exc:  # noqa: BLE001 (one failed phase must not lose the others)
                errors[phase] = f"{type(exc).__name__}: {exc}"
                _log(f"  {phase} FAILED: {errors[phase]}")
                _log(traceback.format_exc())
        if "polling" in results:
            report.add_ratios(results["polling"])
    finally:
        broker.stop()
    results["meta"]["errors"] = errors
    results["meta"]["duration_s"] = round(time.perf_counter() - started, 1)
    results["meta"]["loadavg_at_end"] = loadavg()
    results["targets"] = report.targets(results)
    return results


def main(argv: list[str] | None = None) -> int:
    """Run, print, write."""
    args = parse(argv)
    results = report.run_in_workdir(
        "lanegw-bench-", lambda workdir: run(args, workdir), args.keep, _log
    )
    _log("\n" + report.text(results))
    report.write_json(results, args.json)
    _log(f"\nJSON: {args.json}")
    if not results.get("polling"):
        _log("plot skipped (no polling figures)")
    elif report.plot(results, args.plot):
        _log(f"plot: {args.plot}")
    else:
        _log("plot skipped (matplotlib missing: pip install -e '.[bench]')")
    return 1 if results["meta"]["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
