"""Secrets come from files or the environment, never from the config itself."""

from __future__ import annotations

import os
import stat

from gateway.config import MqttConfig
from gateway.errors import GatewayError

PASSWORD_ENV = "LANEGW_MQTT_PASSWORD"  # noqa: S105 (a variable name)


class SecretError(GatewayError):
    """A secret that cannot be used safely."""


def read_mqtt_password(mqtt: MqttConfig) -> str | None:
    """The MQTT password from ``password_file`` (not world-readable) or the environment."""
    if mqtt.password_file is None:
        return os.environ.get(PASSWORD_ENV)
    try:
        mode = mqtt.password_file.stat().st_mode
        if mode & stat.S_IROTH:
            raise SecretError(
                f"{mqtt.password_file} is world-readable; run: chmod o-r {mqtt.password_file}"
            )
        return mqtt.password_file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise SecretError(f"cannot read {mqtt.password_file}: {exc.strerror}") from None
