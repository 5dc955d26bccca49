"""Orders to the lanes over the gateways' command API (docs/mqtt-api.md): ``cmd/inspect``
and ``cmd/abort`` with a correlation id and a response topic, answered on
``response/{command}``; the lane a registered vehicle goes to, chosen or reassigned."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import aiomqtt
import structlog
from pydantic import ValidationError

from gateway.errors import GatewayError
from gateway.inspection.order import InspectionOrder
from gateway.mqtt import publish_bounded, request_bounded
from gateway.records import CommandResponse
from station.flow.rules import kinds
from station.flow.store import Attempt, Inspection

log = structlog.get_logger("lanegw.station.flow")
RECONNECT_S: Final = 2.0


class DispatchError(GatewayError):
    """An order did not reach a lane, or the lane refused it (the message says why)."""


def build_order(inspection: Inspection, attempt: Attempt) -> dict[str, Any]:
    """The ``inspection-order`` of an attempt's lane items, validated here first."""
    reg = inspection.registration
    fuel = reg["fuel"]
    emission = "none"
    if "TSI" in attempt.lane_items:
        emission = "two_speed_idle"
    elif "FA" in attempt.lane_items:
        emission = "free_acceleration"
    order = {
        "inspection_id": inspection.serial,
        "attempt": attempt.attempt,
        "plate": reg["plate"],
        "vin": reg["vin"],
        "category": kinds()[reg["kind"]].category,
        "inspection_type": "new_registration"
        if reg["inspection_type"] == "new_registration"
        else "in_use",
        "fuel": fuel if fuel in ("petrol", "diesel", "electric", "hybrid") else "other",
        "axle_count": reg["axles"],
        "curb_mass_kg": reg["curb_mass_kg"],
        "gross_mass_kg": reg["gross_mass_kg"],
        "headlamp_system": reg["headlamps"],
        "emission_method": emission,
        "items": attempt.lane_items,
    }
    try:
        InspectionOrder.model_validate(order)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(map(str, first["loc"]))
        raise DispatchError(f"the order is not valid: {where}: {first['msg']}") from None
    return order


@dataclass(frozen=True, slots=True)
class Answer:
    """A lane's answer to a command."""

    ok: bool
    error: str | None
    result: dict[str, Any]


class Dispatcher:
    """One MQTT client of its own for commands; answers matched by correlation id."""

    def __init__(
        self,
        connect: Callable[[], aiomqtt.Client],
        topic_root: str,
        station: str,
        timeout_s: float,
    ) -> None:
        self._connect = connect
        self._base = f"{topic_root}/{station}"
        self._timeout = timeout_s
        self._client: aiomqtt.Client | None = None
        self._pending: dict[str, asyncio.Future[CommandResponse]] = {}
        self.connected = asyncio.Event()

    async def run(self) -> None:
        """Stay connected and take the answers, until cancelled."""
        while True:
            try:
                async with self._connect() as client:
                    topic = f"{self._base}/+/response/+"
                    await request_bounded(client.subscribe(topic, qos=1, timeout=math.inf))
                    self._client = client
                    self.connected.set()
                    log.info("flow_dispatch_connected")
                    async for message in client.messages:
                        self._take(message)
            except aiomqtt.MqttError as exc:
                log.warning("flow_dispatch_mqtt_lost", error=str(exc), retry_in_s=RECONNECT_S)
            finally:
                self._client = None
                self.connected.clear()
            await asyncio.sleep(RECONNECT_S)

    def _take(self, message: aiomqtt.Message) -> None:
        payload = message.payload if isinstance(message.payload, bytes) else b""
        try:
            response = CommandResponse.model_validate_json(payload)
        except ValidationError:
            log.warning("flow_bad_response", topic=str(message.topic)[:200])
            return
        future = self._pending.get(response.correlation_id or "")
        if future is not None and not future.done():
            future.set_result(response)

    async def command(self, lane: str, command: str, args: dict[str, Any]) -> Answer:
        """Send ``command`` to ``lane`` and wait for its answer (``DispatchError`` when no
        answer comes in time or the broker is away)."""
        client = self._client
        if client is None:
            raise DispatchError("the station is not connected to the broker")
        correlation = uuid.uuid4().hex
        response_topic = f"{self._base}/{lane}/response/{command}"
        body = {"args": args, "correlation_id": correlation, "response_topic": response_topic}
        future: asyncio.Future[CommandResponse] = asyncio.get_running_loop().create_future()
        self._pending[correlation] = future
        try:
            await publish_bounded(client, f"{self._base}/{lane}/cmd/{command}",
                                  json.dumps(body, ensure_ascii=False).encode(), qos=1)  # fmt: skip
            async with asyncio.timeout(self._timeout):
                response = await future
        except TimeoutError:
            raise DispatchError(f"lane {lane} did not answer within {self._timeout:g} s") from None
        except aiomqtt.MqttError as exc:
            raise DispatchError(f"the broker refused the order: {exc}") from None
        finally:
            self._pending.pop(correlation, None)
            with contextlib.suppress(asyncio.InvalidStateError):
                future.cancel()
        return Answer(response.ok, response.error, response.result)
