"""Commands from the station server on ``cmd/{name}``: an allow-list, nothing runs a shell.

Each command has a handler that validates its arguments and returns a result dict; the
answer goes to the request's response topic (MQTT 5 property, or ``response_topic`` in
the payload for 3.1.1) with the correlation data echoed. Unknown commands and malformed
payloads are answered with an error, counted, and change nothing.

The MQTT dispatcher hands a command over with ``accept`` and goes on reading; ``run``
(a task of the gateway) runs each command as a task of its own, at most
``MAX_RUNNING`` at once, under its command's timeout (``TIMEOUTS_S``). A command that
fails in an unexpected way is logged with its traceback, counted and answered with an
error: no single message ends the router.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

import structlog
from pydantic import ValidationError

from gateway.command_args import ARGS
from gateway.errors import GatewayError
from gateway.mqtt import Incoming
from gateway.records import CommandRequest, CommandResponse, utc_now

if TYPE_CHECKING:
    from gateway.app import Gateway

log = structlog.get_logger("lanegw.commands")

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]

#: seconds a command may run before it is cancelled and answered with a timeout error;
#: a daily check waits for gas, pumps and the technician (the leak check alone ~3 min)
TIMEOUTS_S: Final[dict[str, float]] = {
    "check": 900.0,
    "sample": 300.0,
    "calibrate": 60.0,
    "rollback": 60.0,
}
DEFAULT_TIMEOUT_S: Final = 30.0
#: commands running at once; more wait in the inbox
MAX_RUNNING: Final = 8
#: commands waiting to run; past this a command is answered "busy" at once
INBOX_SIZE: Final = 64
#: the longest MQTT topic (a UTF-8 string with a 16-bit length)
MAX_TOPIC_BYTES: Final = 65_535
#: the largest command payload read (a calibration with 20 points is under 2 kB)
MAX_PAYLOAD_BYTES: Final = 64 * 1024


class CommandError(GatewayError):
    """A command that was understood but cannot be carried out; the message says why."""


class CommandRouter:
    """Dispatches allowed commands to their handlers."""

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway
        self._inbox: asyncio.Queue[Incoming] = asyncio.Queue(INBOX_SIZE)
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

    def accept(self, incoming: Incoming) -> None:
        """Take a command from the MQTT dispatcher without waiting (``run`` serves it)."""
        try:
            self._inbox.put_nowait(incoming)
        except asyncio.QueueFull:
            self._gateway.metrics.bad_messages.labels("cmd_busy").inc()
            topic = self._gateway.link.topics.response(incoming.command)
            error = f"busy: {INBOX_SIZE} commands are waiting; try again later"
            self._gateway.link.respond(topic, self._answer(incoming, None, error=error), None)

    async def serve(self) -> None:
        """Run accepted commands, each as its own task, until cancelled."""
        slots = asyncio.Semaphore(MAX_RUNNING)
        async with asyncio.TaskGroup() as group:
            while True:
                incoming = await self._inbox.get()
                await slots.acquire()
                group.create_task(self._serve_one(incoming, slots), name=f"cmd:{incoming.command}")

    async def _serve_one(self, incoming: Incoming, slots: asyncio.Semaphore) -> None:
        try:
            topic, payload = await self.handle(incoming)
            self._gateway.link.respond(topic, payload, incoming.correlation_data)
        finally:
            slots.release()

    async def handle(self, incoming: Incoming) -> tuple[str, bytes]:
        """Run one command; returns (response topic, payload), whatever happens."""
        topics = self._gateway.link.topics
        if (refusal := _payload_problem(incoming.payload)) is not None:
            self._gateway.metrics.bad_messages.labels("cmd").inc()
            return topics.response(incoming.command), self._answer(incoming, None, error=refusal)
        try:
            request = CommandRequest.model_validate_json(incoming.payload)
        except ValidationError as exc:
            self._gateway.metrics.bad_messages.labels("cmd").inc()
            first = exc.errors(include_url=False)[0]
            error = f"invalid command payload: {first['msg']} at {_loc(first['loc'])}"
            return topics.response(incoming.command), self._answer(incoming, None, error=error)
        default_topic = topics.response(incoming.command)
        topic = incoming.response_topic or request.response_topic or default_topic
        if (problem := _topic_problem(topic)) is not None:
            self._gateway.metrics.bad_messages.labels("cmd").inc()
            error = f"invalid response topic: {problem}; answered on {default_topic}"
            return default_topic, self._answer(incoming, request, error=error)
        seconds = TIMEOUTS_S.get(incoming.command, DEFAULT_TIMEOUT_S)
        try:
            async with asyncio.timeout(seconds):
                result = await self.run(incoming.command, request.args)
        except CommandError as exc:
            return topic, self._answer(incoming, request, error=str(exc))
        except TimeoutError:
            log.warning("command_timed_out", command=incoming.command, seconds=seconds)
            error = f"{incoming.command} did not finish within {seconds:g} s and was stopped"
            return topic, self._answer(incoming, request, error=error)
        except Exception as exc:  # the router's supervisor: one bad command, not the router
            self._gateway.metrics.task_restarts.labels(f"cmd:{incoming.command}").inc()
            log.exception("command_crashed", command=incoming.command, error=repr(exc))
            error = f"{incoming.command} failed unexpectedly ({type(exc).__name__}); see the log"
            return topic, self._answer(incoming, request, error=error)
        return topic, self._answer(incoming, request, result=result)

    async def run(self, command: str, args: dict[str, Any]) -> dict[str, Any]:
        """Run an allowed command (for MQTT and the local control socket alike).

        Raises ``CommandError`` saying why when the command is unknown or refused.
        """
        handler = self._handlers.get(command)
        if handler is None:
            self._gateway.metrics.bad_messages.labels("cmd").inc()
            raise CommandError(f"unknown command {command!r}; allowed: {', '.join(self.names)}")
        model = ARGS.get(command)
        try:
            if model is not None:  # checked here, so every handler gets sound arguments
                args = model.model_validate(args).model_dump()
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
        source, locks = args["source"], args["locks"]  # checked: RegulatorLockArgs
        known = {d.id for d in self._gateway.config.devices}
        if unknown := sorted(set(locks) - known):
            raise CommandError(f"no device {unknown[0]!r} (devices: {', '.join(sorted(known))})")
        clean: dict[str, list[str]] = locks
        self._gateway.regulator_locks.replace(source, clean)
        log.warning("regulator_lock", source=source, locks=clean)
        return {"locked": self._gateway.lockouts()}

    async def _abort(self, args: dict[str, Any]) -> dict[str, Any]:
        return self._gateway.runner.abort(args["inspection_id"])


def _payload_problem(payload: bytes) -> str | None:
    """Why a command payload is refused before it is parsed (None: it is parsed)."""
    if not payload.strip():
        return 'empty command payload: send a JSON object, e.g. {"args": {}}'
    if len(payload) > MAX_PAYLOAD_BYTES:
        return f"command payload of {len(payload)} bytes refused (at most {MAX_PAYLOAD_BYTES})"
    return None


def _topic_problem(topic: str) -> str | None:
    """Why ``topic`` cannot be published to (None: it can)."""
    if not topic:
        return "empty"
    if "+" in topic or "#" in topic:
        return "wildcards (+, #) are not allowed in a topic to publish to"
    if "\x00" in topic:
        return "a NUL character"
    if len(topic.encode("utf-8", errors="surrogatepass")) > MAX_TOPIC_BYTES:
        return f"longer than {MAX_TOPIC_BYTES} bytes"
    return None


def _loc(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(payload)"
