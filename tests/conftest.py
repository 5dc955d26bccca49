"""Shared fixtures. Device tests run drivers against simulators over real byte streams;
MQTT tests run against a real mosquitto on a free loopback port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.mosquitto import Mosquitto


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A fresh mosquitto for one test (stoppable for outage tests)."""
    broker = Mosquitto(tmp_path)
    broker.start()
    yield broker
    broker.stop()
