"""Secrets come from files or the environment, never from the config itself."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from gateway.config import MqttConfig
from gateway.errors import GatewayError

PASSWORD_ENV = "LANEGW_MQTT_PASSWORD"  # noqa: S105 (a variable name)


class SecretError(GatewayError):
    """A secret that cannot be used safely."""


def read_mqtt_password(mqtt: MqttConfig) -> str | None:
    """The MQTT password from ``password_file`` (not world-readable) or the environment."""
    return read_password(mqtt.password_file)


def read_password(password_file: Path | None) -> str | None:
    """A broker password from a file (not world-readable), else from LANEGW_MQTT_PASSWORD."""
    if password_file is None:
        return os.environ.get(PASSWORD_ENV)
    try:
        mode = password_file.stat().st_mode
        if mode & stat.S_IROTH:
            raise SecretError(f"{password_file} is world-readable; run: chmod o-r {password_file}")
        return password_file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise SecretError(f"cannot read {password_file}: {exc.strerror}") from None
