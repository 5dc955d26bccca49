"""The MQTT topic scheme, in one place (documented in docs/mqtt-api.md)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Topics:
    """Topics of one lane under ``{root}/{station}/{lane}/``."""

    root: str
    station: str
    lane: str

    @property
    def base(self) -> str:
        """The lane's topic prefix."""
        return f"{self.root}/{self.station}/{self.lane}"

    @property
    def state(self) -> str:
        """Retained birth / will."""
        return f"{self.base}/state"

    @property
    def results(self) -> str:
        """Result records, QoS 1."""
        return f"{self.base}/results"

    @property
    def progress(self) -> str:
        """Inspection progress, QoS 0 with expiry."""
        return f"{self.base}/progress"

    @property
    def ack(self) -> str:
        """The station server's acknowledgements."""
        return f"{self.base}/ack"

    @property
    def commands(self) -> str:
        """Subscription filter for commands."""
        return f"{self.base}/cmd/+"

    def command_name(self, topic: str) -> str | None:
        """The command of a ``cmd/{name}`` topic, or None for other topics."""
        prefix = f"{self.base}/cmd/"
        if topic.startswith(prefix) and "/" not in topic[len(prefix) :]:
            return topic[len(prefix) :]
        return None

    def response(self, command: str) -> str:
        """Default response topic when the request names none."""
        return f"{self.base}/response/{command}"

    def device_status(self, device: str) -> str:
        """Retained device availability."""
        return f"{self.base}/devices/{device}/status"

    def telemetry(self, device: str) -> str:
        """Live readings of a device, QoS 0."""
        return f"{self.base}/telemetry/{device}"
