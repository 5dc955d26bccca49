"""The local control socket: how the technician CLI talks to the running daemon.

A Unix socket in the state directory (``control.sock``, mode 0660: root and the gateway's
group only). Each connection sends one JSON line ``{"command": NAME, "args": {...}}``.
Ordinary commands (the same allow-list as MQTT: ``status``, ``ping``, ``inspect``,
``abort``) get one JSON line back, ``{"ok": true, "result": {...}}`` or ``{"ok": false,
"error": "..."}``. ``monitor`` streams one line per reading of the named device until the
client hangs up (readings a procedure takes while it holds the device included); after a
second without one, a ``{"device", "state"}`` line says why (offline and its last error,
or what holds the device). Nothing received is ever run as a shell command.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import structlog

from gateway.commands import CommandError

if TYPE_CHECKING:
    from gateway.app import Gateway
    from gateway.supervisor import DeviceSupervisor

log = structlog.get_logger("lanegw.control")

SOCKET_NAME: Final = "control.sock"
Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]
#: readings a slow monitor client may lag behind before the oldest are dropped
MONITOR_QUEUE: Final = 256
#: a monitor client without readings for this long gets the device's state (why none)
MONITOR_STATUS_S: Final = 1.0
#: largest request line accepted
MAX_REQUEST: Final = 64 * 1024


def socket_path(state_dir: Path) -> Path:
    """Where the daemon of this state directory listens."""
    return state_dir / SOCKET_NAME


class Monitors:
    """Fan-out of device readings to connected ``monitor`` clients."""

    def __init__(self) -> None:
        self._queues: dict[str, set[asyncio.Queue[dict[str, Any]]]] = {}

    def watched(self, device: str) -> bool:
        """Whether any client monitors ``device``."""
        return bool(self._queues.get(device))

    def publish(self, device: str, values: dict[str, Any], ts: float) -> None:
        """Hand a reading's (calibrated) values to the clients watching ``device``."""
        queues = self._queues.get(device)
        if not queues:
            return
        item = {"device": device, "ts": ts, "values": values}
        for queue in queues:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(item)

    @contextlib.contextmanager
    def watch(self, device: str) -> Any:
        """A queue receiving the readings of ``device`` while the block runs."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(MONITOR_QUEUE)
        self._queues.setdefault(device, set()).add(queue)
        try:
            yield queue
        finally:
            self._queues[device].discard(queue)


class ControlServer:
    """Serves the control socket of one gateway."""

    def __init__(self, gateway: Gateway) -> None:
        self._gw = gateway
        self.path = socket_path(gateway.config.state_dir)

    async def serve(self) -> None:
        """Listen until cancelled; removes the socket file afterwards."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # left by a daemon that was killed
        server = await asyncio.start_unix_server(self._client, self.path, limit=MAX_REQUEST)
        os.chmod(self.path, 0o660)
        try:
            async with server:
                await server.serve_forever()
        finally:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await reader.readline()
            request = _parse(line)
            if request["command"] == "monitor":
                await self._monitor(request["args"], writer)
            else:
                await _send(writer, await self._run(request))
        except (ConnectionError, asyncio.IncompleteReadError, ValueError) as exc:
            with contextlib.suppress(ConnectionError):
                await _send(writer, {"ok": False, "error": str(exc)})
        finally:
            writer.close()

    async def _run(self, request: dict[str, Any]) -> dict[str, Any]:
        try:
            result = await self._gw.commands.run(request["command"], request["args"])
        except CommandError as exc:
            return {"ok": False, "error": str(exc)}
        return {"ok": True, "result": result}

    async def _monitor(self, args: dict[str, Any], writer: asyncio.StreamWriter) -> None:
        device = args.get("device")
        if device not in self._gw.supervisors:
            known = ", ".join(self._gw.supervisors)
            await _send(writer, {"ok": False, "error": f"no device {device!r} (devices: {known})"})
            return
        supervisor = self._gw.supervisors[device]
        await _send(writer, {"ok": True, "result": _device_state(supervisor)})
        with self._gw.monitors.watch(device) as queue:
            while True:
                try:
                    async with asyncio.timeout(MONITOR_STATUS_S):
                        item = await queue.get()
                except TimeoutError:  # no reading: say why (offline, held by a procedure)
                    item = {"device": device, "state": _device_state(supervisor)}
                await _send(writer, item)


def _device_state(supervisor: DeviceSupervisor) -> dict[str, Any]:
    """The device's status with what holds it (``held_for``), for monitor clients."""
    state: dict[str, Any] = supervisor.status().model_dump(mode="json")
    return state | {"held_for": supervisor.held_for}


def _parse(line: bytes) -> dict[str, Any]:
    if not line.strip():
        raise ValueError('empty request: send one JSON line {"command": ..., "args": {...}}')
    try:
        request = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"request is not JSON: {exc.msg}") from None
    if not isinstance(request, dict) or not isinstance(request.get("command"), str):
        raise ValueError("request must be an object with a string 'command'")
    args = request.get("args", {})
    if not isinstance(args, dict):
        raise ValueError("'args' must be an object")
    return {"command": request["command"], "args": args}


async def _send(writer: asyncio.StreamWriter, message: dict[str, Any]) -> None:
    writer.write(json.dumps(message, ensure_ascii=False, default=str).encode() + b"\n")
    await writer.drain()


@contextlib.asynccontextmanager
async def connect(
    state_dir: Path,
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """Open the control socket of the daemon using ``state_dir`` (for the CLI)."""
    path = socket_path(state_dir)
    try:
        reader, writer = await asyncio.open_unix_connection(path, limit=16 * 1024 * 1024)
    except (FileNotFoundError, ConnectionRefusedError):
        raise ConnectionError(f"no lanegw daemon is running for {state_dir} ({path})") from None
    except PermissionError:
        raise ConnectionError(
            f"{path}: permission denied (run as root or the lanegw group)"
        ) from None
    try:
        yield reader, writer
    finally:
        writer.close()


async def request(
    state_dir: Path, command: str, args: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Send one command to the daemon and return its answer."""
    async with connect(state_dir) as (reader, writer):
        await _send(writer, {"command": command, "args": args or {}})
        line = await reader.readline()
    if not line:
        raise ConnectionError("the daemon closed the connection without answering")
    answer: dict[str, Any] = json.loads(line)
    return answer
