"""``python -m station.upload --config FILE``: the uploader alone (no receiver), e.g. on
another host of a PostgreSQL station, or while the receiver runs without ``upload``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import typer
from rich.console import Console

from gateway.cli.common import exit_with_problems, run_daemon
from gateway.errors import ConfigError
from gateway.secrets import read_password
from gateway.signals import until_signalled
from station.config import StationConfig, load_station_config
from station.receiver import mqtt_client
from station.store import RecordStore
from station.upload.service import Uploader


async def upload_alone(config: StationConfig) -> None:
    """Open the store and upload until SIGTERM/SIGINT."""
    password = read_password(config.mqtt.password_file)
    store = await RecordStore.open(config.database.url, f"{config.client_id}-upload")
    try:
        uploader = Uploader(
            config,
            store,
            lambda: mqtt_client(config, password, f"{config.client_id}-upload"),
            own_store=True,
        )
        await until_signalled(uploader.run())
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m station.upload", description=__doc__)
    parser.add_argument("--config", "-c", type=Path, default=Path("/etc/lanegw/station.yaml"))
    parser.add_argument("--log-format", default="auto")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args()
    err = Console(stderr=True)
    try:
        try:
            config = load_station_config(args.config)
        except ConfigError as exc:
            exit_with_problems(exc, err)
        run_daemon(lambda: upload_alone(config), args.log_format, args.log_level, err)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
