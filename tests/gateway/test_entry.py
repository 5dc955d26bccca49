"""The ``lanegw`` launcher (gateway/cli/entry.py): ``lanegw run`` starts the daemon without
the CLI's imports; everything else, and every mistake, is the Typer app's as before."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from bench.sims import MAP_PATH
from gateway.cli.entry import RunArgs, parse_run
from tests.harness import BASE, Daemon, Station, send_command, write_config
from tests.mosquitto import Mosquitto

#: what a lane never uses: the CLI's toolkit, the station server and its dependencies,
#: the demo's embedded broker, the colour tracebacks structlog would pull in with Rich
NOT_ON_A_LANE = (
    "typer",
    "click",
    "rich",
    "pygments",
    "station",
    "aiohttp",
    "psycopg",
    "jinja2",
    "reportlab",
    "amqtt",
    "greenlet",
)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["run", "--config", "a.yaml"], RunArgs(Path("a.yaml"))),
        (["run", "-c", "a.yaml"], RunArgs(Path("a.yaml"))),
        (["run", "-ca.yaml"], RunArgs(Path("a.yaml"))),
        (["run", "--config=a.yaml", "--log-format=json"], RunArgs(Path("a.yaml"), "json")),
        (
            ["run", "--log-level", "debug", "--log-format", "console", "-c", "a.yaml"],
            RunArgs(Path("a.yaml"), "console", "debug"),
        ),
        (["run"], None),  # missing --config: Typer says so
        (["run", "--help"], None),
        (["run", "-c", "a.yaml", "--help"], None),
        (["run", "-c"], None),
        (["run", "-c", "a.yaml", "-c", "b.yaml"], None),
        (["run", "-c", "a.yaml", "extra"], None),
        (["run", "-c", "a.yaml", "--bogus"], None),
        (["run", "-c", "a.yaml", "--log-format", "xml"], None),
        (["run", "-c", "a.yaml", "--log-level", "loud"], None),
        (["run", "--config="], None),
        (["run", "-c", "--log-format"], None),
        (["--help"], None),
        (["status"], None),
        ([], None),
    ],
)
def test_only_a_plain_run_is_read_by_the_launcher(
    argv: list[str], expected: RunArgs | None
) -> None:
    assert parse_run(argv) == expected


def test_the_console_script_is_the_launcher() -> None:
    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "lanegw"]
    assert script.value == "gateway.cli.entry:main"


#: ``lanegw run`` as the console script starts it, writing the names of every module it
#: has loaded (``sys.modules``) to the file named by argv[1] when it exits
WITH_MODULE_LIST = """
import atexit, json, sys
out = sys.argv.pop(1)
atexit.register(lambda: open(out, "w").write(json.dumps(sorted(sys.modules))))
from gateway.cli.entry import main
main()
"""


class ModuleListDaemon(Daemon):
    """The daemon, telling at its exit which modules it had imported."""

    def __init__(self, config: Path, log: Path, modules: Path) -> None:
        super().__init__(config, log)
        self.modules_file = modules

    async def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-c", WITH_MODULE_LIST, str(self.modules_file), "run",
                "--config", str(self.config), "--log-format", "json",
                stdout=log, stderr=log,
            )  # fmt: skip

    def modules(self) -> set[str]:
        return set(json.loads(self.modules_file.read_text()))


async def test_run_imports_only_what_a_lane_uses(tmp_path: Path, mosquitto: Mosquitto) -> None:
    config = write_config(
        tmp_path / "lane.yaml",
        tmp_path / "state",
        mosquitto.port,
        buses=[
            {"id": "com1", "url": "socket://127.0.0.1:9"},
            {"id": "mb1", "kind": "modbus_tcp", "url": "127.0.0.1:9"},
        ],
        devices=[
            {"id": "s", "class": "speedometer_tester", "protocol": "tlch10", "bus": "com1"},
            {
                "id": "w",
                "class": "axle_weigher",
                "protocol": "modbus-weigher",
                "bus": "mb1",
                "options": {"map": str(MAP_PATH)},
            },
        ],
    )
    daemon = ModuleListDaemon(config, tmp_path / "daemon.log", tmp_path / "modules.json")
    station = Station(mosquitto.port)
    listening = asyncio.create_task(station.run())
    try:
        await daemon.start()
        await station.wait_for(
            lambda: any(m.get("online") for m in station.messages.get("state", []))
        )
        # the commands a station sends, each handled in the running daemon
        assert (await send_command(mosquitto.port, "ping", {}))["ok"]
        assert (await send_command(mosquitto.port, "status", {}))["ok"]
    finally:
        assert await daemon.stop() == 0, daemon.log.read_text()[-2000:]
        listening.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listening
    modules = daemon.modules()
    # the check reads what it should: the daemon's own parts and its dependencies
    assert {"gateway.app", "gateway.mqtt", "aiomqtt", "pymodbus", "structlog"} <= modules
    unwanted = sorted(m for m in modules if m.split(".")[0] in NOT_ON_A_LANE)
    assert unwanted == [], f"lanegw run imported {unwanted} ({BASE})"


def _lanegw(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env={**os.environ, "COLUMNS": "200"},  # Rich's error box: no wrapped messages
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--config", "lane.yaml", "--bogus"], "No such option: --bogus"),
        (["run"], "Missing option '--config'"),
        (["run", "-c"], "Option '-c' requires an argument"),
        (["run", "-c", "lane.yaml", "surplus"], "unexpected extra argument(s) (surplus)"),
        (["run", "-c", "lane.yaml", "-c", "other.yaml", "--log-level"], "requires an argument"),
    ],
)
def test_bad_options_get_typers_message(args: list[str], message: str, tmp_path: Path) -> None:
    result = _lanegw(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Error" in result.stderr and "Traceback" not in result.stderr


def test_wrong_log_format_and_a_broken_config_get_the_clis_messages(tmp_path: Path) -> None:
    good = write_config(
        tmp_path / "good.yaml",
        tmp_path / "state",
        1883,
        buses=[{"id": "com1", "url": "socket://127.0.0.1:9"}],
        devices=[{"id": "s", "class": "speedometer_tester", "protocol": "tlch10", "bus": "com1"}],
    )
    bad_format = _lanegw("run", "-c", str(good), "--log-format", "xml")
    config = tmp_path / "lane.yaml"
    config.write_text("station: 4401001\nlane: L1\nbuses: 7\n")
    assert bad_format.returncode == 2
    assert "--log-format must be auto, json or console, not 'xml'" in bad_format.stderr
    broken = _lanegw("run", "-c", str(config))
    assert broken.returncode == 2
    assert "problem(s)" in broken.stderr and "buses" in broken.stderr
    assert "Traceback" not in broken.stderr + bad_format.stderr


def test_help_is_typers(tmp_path: Path) -> None:
    result = _lanegw("run", "--help", cwd=tmp_path)
    assert result.returncode == 0
    assert "Run the gateway daemon until SIGTERM/SIGINT." in result.stdout
    assert "--log-format" in result.stdout


def test_demo_without_its_extra_says_what_to_install() -> None:
    # an install without the `demo` extra: amqtt cannot be imported
    code = (
        "import sys; sys.modules['amqtt'] = None; "
        "from gateway.cli.entry import main; main(['demo', '--duration', '1'])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert result.returncode == 2
    assert "pip install 'lane-gateway[station,demo]'" in result.stderr
    assert "Traceback" not in result.stderr
