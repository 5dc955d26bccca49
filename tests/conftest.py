"""Shared fixtures. Device tests run drivers against simulators over real byte streams;
MQTT tests run against a real mosquitto on a free loopback port."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.mosquitto import Mosquitto

# port locks of daemons and CLIs started by the tests stay out of /run/lock
os.environ.setdefault("LANEGW_LOCK_DIR", tempfile.mkdtemp(prefix="lanegw-locks-"))


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A fresh mosquitto for one test (stoppable for outage tests)."""
    broker = Mosquitto(tmp_path)
    broker.start()
    yield broker
    broker.stop()
