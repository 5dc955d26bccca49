"""Resident memory per import of the running daemon (``python -m bench.imports``).

Starts a mosquitto and N bench meters (as the polling phase does), then ``lanegw run`` on
them in a child process whose ``__import__`` is wrapped: each import that loads new
modules is charged the growth of ``VmRSS`` it caused, less what its own nested imports
caused, to the top-level package it loads (``rich``, ``pydantic``, ``gateway`` ...).
``--seconds`` after it connected to the broker the child is told (SIGUSR1) to note its
RSS and stop itself with SIGTERM, so the table adds up to that RSS: the interpreter at
start, each package, and the running state (everything after the imports). The lean
launcher (gateway/cli/entry.py) runs as the ``lanegw`` script does; ``--typer`` runs the
same command through the Typer app, as ``lanegw run`` started before the launcher
existed. Figures are approximate per
package (memory grows by pages and malloc arenas) and exact in sum.

    python -m bench.imports                    # 8 devices, 8 s, the lean launcher
    python -m bench.imports --typer --devices 1
"""

from __future__ import annotations

import builtins
import importlib
import importlib.util
import json
import os
import signal
import sys
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

# only what the interpreter has loaded anyway: the rest is imported by the parent alone,
# so that the measured child starts with as little as possible


def rss_mb() -> float:
    """This process's VmRSS in MB (10^6 bytes)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024 / 1e6
    return 0.0


class ImportMeter:
    """Charges RSS growth to the top-level package of each import that loads modules."""

    def __init__(self, detail: Sequence[str] = ()) -> None:
        """``detail``: packages whose modules are charged one by one (``gateway.app``)."""
        self.detail = tuple(detail)
        self.by_package: dict[str, float] = defaultdict(float)
        self._stack: list[float] = []  # RSS growth of the nested imports of each level
        self._original = builtins.__import__

    def install(self) -> None:
        """Wrap ``__import__`` and ``importlib.import_module`` (the driver registry's)."""
        original_module = importlib.import_module

        def import_module(name: str, package: str | None = None) -> ModuleType:
            absolute = importlib.util.resolve_name(name, package) if name[:1] == "." else name
            return self._charged(absolute, lambda: original_module(name, package))

        builtins.__import__ = self._import
        importlib.import_module = import_module

    def _import(
        self,
        name: str,
        globals: Mapping[str, object] | None = None,
        locals: Mapping[str, object] | None = None,
        fromlist: Sequence[str] | None = (),
        level: int = 0,
    ) -> ModuleType:
        if level == 0 and name in sys.modules and not fromlist:
            return self._original(name, globals, locals, fromlist, level)
        package = name if level == 0 else str((globals or {}).get("__package__") or name)
        return self._charged(
            package, lambda: self._original(name, globals, locals, fromlist, level)
        )

    def _charged(self, name: str, load: Callable[[], ModuleType]) -> ModuleType:
        count, before = len(sys.modules), rss_mb()
        self._stack.append(0.0)
        try:
            return load()
        finally:
            nested = self._stack.pop()
            if len(sys.modules) != count:
                grown = rss_mb() - before
                top = name.split(".")[0]
                self.by_package[name if top in self.detail else top] += grown - nested
                if self._stack:
                    self._stack[-1] += grown


def child(out: Path, typer: bool, detail: list[str], argv: list[str]) -> None:
    """In the daemon's process: measure its imports; on SIGUSR1 its RSS, then stop."""
    started = rss_mb()
    meter = ImportMeter(detail)
    meter.install()
    report: dict[str, Any] = {"start_mb": started}

    def stop(_signum: int, _frame: object) -> None:
        report["end_mb"] = rss_mb()
        os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(signal.SIGUSR1, stop)  # the parent's "measure now"
    try:
        if typer:
            from gateway.cli.main import app

            app(args=argv, standalone_mode=False)
        else:
            from gateway.cli.entry import main

            main(argv)
    finally:
        report["packages"] = dict(meter.by_package)
        report["modules"] = sorted(sys.modules)
        out.write_text(json.dumps(report))


async def measure(
    devices: int, seconds: float, typer: bool, detail: str, workdir: Path
) -> dict[str, Any]:
    """A broker, ``devices`` meters and the measured daemon on them."""
    import asyncio

    from bench.broker import Broker
    from bench.proc import loadavg
    from bench.procs import Child, Sims, child_env, modbus_device, write_config

    broker = Broker(workdir)
    broker.start()
    try:
        async with Sims({"modbus": devices}, workdir) as sims:
            entries = [modbus_device(i, p, 0.1) for i, p in enumerate(sims.endpoints["modbus"])]
            config = write_config(
                workdir / "lane.yaml",
                workdir / "state",
                broker.port,
                [bus for bus, _ in entries],
                [device for _, device in entries],
            )
            out = workdir / "imports.json"
            argv = [sys.executable, "-m", "bench.imports", "--child"]
            argv += [str(out), "typer" if typer else "lean", detail, "--"]
            argv += ["run", "--config", str(config), "--log-format", "json"]
            load = loadavg()
            proc = Child(argv, workdir / "daemon.log", child_env(workdir))
            await proc.start()
            assert proc.proc is not None
            log = workdir / "daemon.log"
            async with asyncio.timeout(120):  # connected, then ``seconds`` of polling
                while '"mqtt_connected"' not in log.read_text(errors="replace"):
                    if proc.proc.returncode is not None:
                        tail = log.read_text(errors="replace")[-2000:]
                        raise RuntimeError(f"the daemon exited before connecting:\n{tail}")
                    await asyncio.sleep(0.1)
                await asyncio.sleep(seconds)
                proc.proc.send_signal(signal.SIGUSR1)
                await proc.proc.wait()
    finally:
        broker.stop()
    result: dict[str, Any] = json.loads(out.read_text())
    result["loadavg"] = load
    return result


def table(result: dict[str, Any], top: int) -> str:
    """Interpreter, the packages by size, the running state, the total."""
    packages = sorted(result["packages"].items(), key=lambda kv: -kv[1])
    imported = sum(result["packages"].values())
    lines = [f"{'interpreter at start':32} {result['start_mb']:6.1f}"]
    shown = packages[:top]
    lines += [f"{name:32} {mb:6.1f}" for name, mb in shown]
    others = sum(mb for _, mb in packages[top:])
    lines.append(f"{f'{len(packages) - len(shown)} other packages':32} {others:6.1f}")
    running = result["end_mb"] - result["start_mb"] - imported
    lines.append(f"{'running (after the imports)':32} {running:6.1f}")
    lines.append(f"{'VmRSS at the end':32} {result['end_mb']:6.1f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Parent: set up, run the child, print; ``--child``: be the measured daemon."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        out, mode, detail = argv[1:4]
        child(Path(out), mode == "typer", [d for d in detail.split(",") if d], argv[5:])
        return 0
    import argparse
    import asyncio
    import tempfile
    import time

    p = argparse.ArgumentParser(prog="python -m bench.imports", description=__doc__.split("\n")[0])
    p.add_argument("--devices", type=int, default=8)
    p.add_argument("--seconds", type=float, default=8.0, help="run this long once connected")
    p.add_argument("--typer", action="store_true", help="through the Typer app, not the launcher")
    p.add_argument("--top", type=int, default=25, help="packages listed one by one")
    p.add_argument("--detail", default="", help="packages shown module by module: gateway,drivers")
    p.add_argument("--json", type=Path, help="write the figures here too")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="lanegw-imports-") as tmp:
        started = time.perf_counter()
        result = asyncio.run(
            measure(args.devices, args.seconds, args.typer, args.detail, Path(tmp))
        )
    print(
        f"lanegw run ({'Typer app' if args.typer else 'launcher'}), {args.devices} devices,"
        f" after {args.seconds:g} s; load {result['loadavg'][0]}; MB (10^6 bytes):"
    )
    print(table(result, args.top))
    print(f"({time.perf_counter() - started:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
