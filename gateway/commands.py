"""Commands from the station server on ``cmd/{name}``: an allow-list, nothing runs a shell.

Each command has a handler that validates its arguments and returns a result dict; the
answer goes to the request's response topic (MQTT 5 property, or ``response_topic`` in
the payload for 3.1.1) with the correlation data echoed. Unknown commands and malformed
payloads are answered with an error, counted, and change nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import structlog
from pydantic import ValidationError

from gateway.errors import GatewayError
from gateway.mqtt import Incoming
from gateway.records import CommandRequest, CommandResponse, utc_now

if TYPE_CHECKING:
    from gateway.app import Gateway

log = structlog.get_logger("lanegw.commands")

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class CommandError(GatewayError):
    """A command that was understood but cannot be carried out; the message says why."""


class CommandRouter:
    """Dispatches allowed commands to their handlers."""

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway
        self._handlers: dict[str, Handler] = {
            "ping": self._ping,
            "status": self._status,
            "inspect": self._inspect,
            "abort": self._abort,
            "check": self._check,
            "lockouts": self._lockouts,
            "regulator_lock": self._regulator_lock,
            "sample": self._calibration("sample"),
            "calibrate": self._calibration("calibrate"),
            "rollback": self._calibration("rollback"),
        }

    @property
    def names(self) -> list[str]:
        """The allowed commands."""
        return sorted(self._handlers)

    async def handle(self, incoming: Incoming) -> tuple[str, bytes] | None:
        """Run one command; returns (response topic, payload)."""
        topics = self._gateway.link.topics
        try:
            request = CommandRequest.model_validate_json(incoming.payload or b"{}")
        except ValidationError as exc:
            self._gateway.metrics.bad_messages.labels("cmd").inc()
            first = exc.errors(include_url=False)[0]
            error = f"invalid command payload: {first['msg']} at {_loc(first['loc'])}"
            return topics.response(incoming.command), self._answer(incoming, None, error=error)
        topic = incoming.response_topic or request.response_topic
        topic = topic or topics.response(incoming.command)
        try:
            result = await self.run(incoming.command, request.args)
        except CommandError as exc:
            return topic, self._answer(incoming, request, error=str(exc))
        return topic, self._answer(incoming, request, result=result)

    async def run(self, command: str, args: dict[str, Any]) -> dict[str, Any]:
        """Run an allowed command (for MQTT and the local control socket alike).

        Raises ``CommandError`` saying why when the command is unknown or refused.
        """
        handler = self._handlers.get(command)
        if handler is None:
            self._gateway.metrics.bad_messages.labels("cmd").inc()
            raise CommandError(f"unknown command {command!r}; allowed: {', '.join(self.names)}")
        try:
            return await handler(args)
        except (CommandError, GatewayError) as exc:
            log.info("command_refused", command=command, error=str(exc))
            raise CommandError(str(exc)) from None
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            message = f"invalid {command} arguments: {first['msg']} at {_loc(first['loc'])}"
            log.info("command_refused", command=command, error=message)
            raise CommandError(message) from None

    def _answer(
        self,
        incoming: Incoming,
        request: CommandRequest | None,
        *,
        result: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> bytes:
        correlation = request.correlation_id if request else None
        if correlation is None and incoming.correlation_data is not None:
            correlation = incoming.correlation_data.decode(errors="replace")
        response = CommandResponse(
            command=incoming.command,
            ok=error is None,
            correlation_id=correlation,
            error=error,
            result=result or {},
            ts=utc_now(),
        )
        return response.model_dump_json().encode()

    async def _ping(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"session_id": self._gateway.session_id}

    async def _status(self, args: dict[str, Any]) -> dict[str, Any]:
        from gateway.status import gateway_status

        return gateway_status(self._gateway).model_dump(mode="json")

    async def _inspect(self, args: dict[str, Any]) -> dict[str, Any]:
        return self._gateway.runner.submit_json(args)

    async def _check(self, args: dict[str, Any]) -> dict[str, Any]:
        from gateway.maintenance.service import run_check

        return await run_check(self._gateway, args)

    def _calibration(self, name: str) -> Handler:
        async def handler(args: dict[str, Any]) -> dict[str, Any]:
            from gateway.maintenance import calibrating

            result: dict[str, Any] = await getattr(calibrating, name)(self._gateway, args)
            return result

        return handler

    async def _lockouts(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"locked": self._gateway.lockouts()}

    async def _regulator_lock(self, args: dict[str, Any]) -> dict[str, Any]:
        """The station passes on a regulator's locks: ``{source, locks: {device: [reasons]}}``
        replaces that source's locks (``{}`` lifts them)."""
        source, locks = args.get("source"), args.get("locks")
        if not isinstance(source, str) or not source or not isinstance(locks, dict):
            raise CommandError("regulator_lock needs args.source (text) and args.locks (object)")
        known = {d.id for d in self._gateway.config.devices}
        clean: dict[str, list[str]] = {}
        for device, reasons in locks.items():
            if device not in known:
                raise CommandError(f"no device {device!r} (devices: {', '.join(sorted(known))})")
            if not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
                raise CommandError(f"locks.{device} must be a list of reasons (text)")
            clean[device] = reasons
        self._gateway.regulator_locks.replace(source, clean)
        log.warning("regulator_lock", source=source, locks=clean)
        return {"locked": self._gateway.lockouts()}

    async def _abort(self, args: dict[str, Any]) -> dict[str, Any]:
        inspection_id = args.get("inspection_id")
        if not isinstance(inspection_id, str):
            raise CommandError("abort needs args.inspection_id")
        return self._gateway.runner.abort(inspection_id)


def _loc(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(payload)"
