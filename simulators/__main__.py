"""``python -m simulators`` / ``lanegw-sim``: run simulated testers from a scenario.

Prints one JSON line per device (``{"device", "protocol", "url"}``) once all listen,
then serves until interrupted. Examples::

    python -m simulators --scenario simulators/scenarios/passing-car.yaml
    python -m simulators --device speed=tlch10 --transport pty --link-dir /tmp/lane
    python -m simulators --device speed=tlch10 --fault-rate 0.05
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from importlib import resources
from pathlib import Path

from simulators.lane import DEFAULT_LANE, SimDevice, SimLane
from simulators.registry import sim_specs
from simulators.scenario import Scenario, load_scenario


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="lanegw-sim", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scenario", type=Path, help="scenario YAML (default: passing-car)")
    parser.add_argument(
        "--device",
        action="append",
        default=[],
        metavar="ID=PROTOCOL",
        help="a device to simulate (repeatable; default: a whole lane)",
    )
    parser.add_argument("--transport", choices=("tcp", "pty"), default="tcp")
    parser.add_argument("--link-dir", type=Path, help="PTY: stable symlinks tty-<id> here")
    parser.add_argument("--time-scale", type=float, help="override the scenario's time scale")
    parser.add_argument(
        "--fault-rate", type=float, default=0.0, help="probability of a random fault per reply"
    )
    return parser.parse_args(argv)


def _scenario(args: argparse.Namespace) -> Scenario:
    if args.scenario is not None:
        scenario = load_scenario(args.scenario)
    else:
        path = resources.files("simulators.scenarios").joinpath("passing-car.yaml")
        with resources.as_file(path) as file:
            scenario = load_scenario(file)
    if args.time_scale is not None:
        timing = scenario.timing.model_copy(update={"time_scale": args.time_scale})
        scenario = scenario.model_copy(update={"timing": timing})
    return scenario


def _devices(args: argparse.Namespace) -> list[SimDevice]:
    known = sim_specs()
    if not args.device:
        return [SimDevice(d, p) for d, p in DEFAULT_LANE if p in known]
    devices = []
    for item in args.device:
        device_id, _, protocol = item.partition("=")
        if protocol not in known:
            raise SystemExit(f"unknown protocol {protocol!r}; known: {', '.join(sorted(known))}")
        devices.append(SimDevice(device_id, protocol))
    return devices


async def _serve(args: argparse.Namespace) -> None:
    lane = SimLane(_scenario(args), _devices(args), args.transport, args.link_dir)
    async with asyncio.TaskGroup() as group:
        running = await lane.start(group)
        for sim in running.values():
            if args.fault_rate:
                sim.faults.set_rate(args.fault_rate)
            print(json.dumps(sim.describe()), flush=True)


def main(argv: list[str] | None = None) -> None:
    """Entry point."""
    args = _parse(argv)
    try:
        scenario_ok = _scenario(args)
    except (OSError, ValueError) as exc:
        print(f"lanegw-sim: cannot load scenario: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    del scenario_ok
    if args.link_dir is not None:
        if args.transport != "pty":
            print("lanegw-sim: --link-dir names PTY links: add --transport pty", file=sys.stderr)
            raise SystemExit(2)
        try:  # a folder that does not exist yet is made, as for any output directory
            args.link_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            print(f"lanegw-sim: cannot use --link-dir {args.link_dir}: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
