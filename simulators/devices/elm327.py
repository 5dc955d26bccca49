"""Simulated ELM327 OBD-II adapter plugged into the scenario's car.

Builds its text itself (only ``drivers.checksums.sum8`` is shared, for the legacy frames'
checksum byte), as an ELM327 v1.5 does: it echoes each command line while echo is on
(``ATE1``, the power-on default), ends lines with CR (CR LF after ``ATL1``), and closes every
answer with an empty line and the ``>`` prompt.

- AT commands: ``ATZ``/``ATWS`` (reset: "ELM327 v1.5"), ``ATI``, ``AT@1``, ``ATE0/1``,
  ``ATL0/1``, ``ATS0/1`` (spaces), ``ATH0/1`` (headers), ``ATSPh``/``ATTPh`` (protocol,
  0 = automatic), ``ATDP``/``ATDPN``, ``ATRV`` (battery volts), ``ATD``, ``ATAT0-2``,
  ``ATSTxx``, ``ATCAF0/1``, ``ATPC`` ("OK"); anything else "?".
- The car (``vehicle.obd``): its protocol (``protocol``, ATDPN digit); with automatic
  search the first request answers ``SEARCHING...`` before the data; a manually set
  protocol other than the car's, or ``ignition_on: false``, gives ``UNABLE TO CONNECT``.
  Without an ``obd`` section the car has no OBD: ``UNABLE TO CONNECT``.
- Mode 01: PID 00 (supported bitmap), 01 (MIL, DTC count, compression ignition for a
  diesel, readiness from ``readiness``: unlisted monitors unsupported), 04/05/0B/0C/0D/
  0F/10/11 live values (engine speed, vehicle speed and load follow the dyno's roller
  plant when one runs on the lane, else idle). Mode 03: ``dtcs``. Mode 09: PID 00, 02
  VIN (multi-frame; ``vin: ''`` answers NO DATA), 04 CALID, 06 CVN. Else ``NO DATA``.
- Frames: CAN 11-bit ``7E8`` / 29-bit ``18 DA F1 10`` with the ISO-TP PCI byte and
  padding to 8 bytes when headers are on; with headers off, single frames as bare data
  and multi-frame answers in ELM's ``014`` / ``0: ...`` display. Legacy protocols: header
  ``48 6B 10`` (ISO 9141-2) or ``8n F1 10`` (KWP), data, sum8 checksum; Mode 03 three DTCs
  per frame, Mode 09 one 4-byte item per frame with its message number.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Final

from drivers.checksums import sum8
from simulators.base import SimContext, SimSpec
from simulators.devices.dyno_physics import plant_of
from simulators.endpoint import SimLink
from simulators.scenario import OBD_MONITORS, Obd, Scenario

PROMPT: Final = b">"
VERSION: Final = "ELM327 v1.5"
NAMES: Final = {
    "3": "ISO 9141-2",
    "4": "ISO 14230-4 (KWP 5BAUD)",
    "5": "ISO 14230-4 (KWP FAST)",
    "6": "ISO 15765-4 (CAN 11/500)",
    "7": "ISO 15765-4 (CAN 29/500)",
    "8": "ISO 15765-4 (CAN 11/250)",
    "9": "ISO 15765-4 (CAN 29/250)",
}
CAN: Final = frozenset("6789")
EXTENDED: Final = frozenset("79")
LIVE_PIDS: Final = (0x04, 0x05, 0x0B, 0x0C, 0x0D, 0x0F, 0x10, 0x11)
MODE01_PIDS: Final = (0x01, *LIVE_PIDS)
MODE09_PIDS: Final = (0x02, 0x04, 0x06)
#: bit of each monitor: (byte, bit) in PID 01 01 (B = continuous, C = supported / D = ready)
CONTINUOUS: Final = ("misfire", "fuel_system", "components")
SPARK: Final = OBD_MONITORS[3:11]
COMPRESSION: Final = (
    "nmhc_catalyst",
    "nox_scr_monitor",
    "",
    "boost_pressure",
    "",
    "exhaust_gas_sensor",
    "pm_filter",
    "egr_vvt_system",
)


def bitmap(pids: tuple[int, ...], base: int = 0) -> bytes:
    """The 4-byte supported-PID bitmap of PIDs base+1 .. base+32."""
    bits = 0
    for pid in pids:
        if base < pid <= base + 32:
            bits |= 1 << (32 - (pid - base))
    return bits.to_bytes(4, "big")


def dtc_bytes(code: str) -> bytes:
    """``P0133`` -> ``01 33``."""
    letter = "PCBU".index(code[0])
    return bytes(((letter << 6) | (int(code[1]) << 4) | int(code[2], 16), int(code[3:], 16)))


def monitor_bytes(obd: Obd, diesel: bool) -> bytes:
    """PID 01 01: A (MIL, count), B, C, D."""
    a = (0x80 if obd.mil_on else 0) | min(0x7F, len(obd.dtcs))
    b = 0x08 if diesel else 0
    for i, name in enumerate(CONTINUOUS):
        if name in obd.readiness:
            b |= 1 << i
            if obd.readiness[name] == "incomplete":
                b |= 1 << (i + 4)
    c = d = 0
    for i, name in enumerate(COMPRESSION if diesel else SPARK):
        if name and name in obd.readiness:
            c |= 1 << i
            if obd.readiness[name] == "incomplete":
                d |= 1 << i
    return bytes((a, b, c, d))


class Elm327Sim:
    """The simulated adapter and the car's ECU behind it."""

    nak: bytes = b"?\r\r>"

    def __init__(self, ctx: SimContext, clock: Callable[[], float] = time.monotonic) -> None:
        self.scenario: Scenario = ctx.scenario
        self.obd = ctx.scenario.vehicle.obd
        self.position = ctx.position
        self._clock = clock
        self.commands: list[str] = []
        self._reset()

    def _reset(self) -> None:
        self.echo, self.linefeeds, self.spaces, self.headers = True, False, True, False
        self.protocol = "0"
        self.found: str | None = None

    # --- service ----------------------------------------------------------------------

    async def handle(self, link: SimLink) -> None:
        """Serve one connection: a reply per CR-terminated command line."""
        buf = bytearray()
        while True:
            buf += await link.read()
            while (end := buf.find(b"\r")) >= 0:
                raw = bytes(buf[:end])
                del buf[: end + 1]
                text = raw.decode("ascii", "replace").replace("\n", "")
                await link.send(self.answer(text))

    def answer(self, text: str) -> bytes:
        """The bytes the adapter sends for the command line ``text``."""
        command = text.replace(" ", "").upper()
        echo = self.echo
        self.commands.append(command)
        lines = self._at(command) if command.startswith("AT") else self._obd_lines(command)
        end = "\r\n" if self.linefeeds else "\r"
        head = text + end if echo and command else ""
        return (head + "".join(line + end for line in lines) + end).encode("ascii") + PROMPT

    # --- AT commands ------------------------------------------------------------------

    def _at(self, command: str) -> list[str]:
        arg = command[2:]
        switches = {"E": "echo", "L": "linefeeds", "S": "spaces", "H": "headers"}
        if arg in ("Z", "WS"):
            self._reset()
            return ["", VERSION]
        if arg == "I":
            return [VERSION]
        if arg == "@1":
            return ["OBDII to RS232 Interpreter"]
        if len(arg) == 2 and arg[0] in switches and arg[1] in "01":
            setattr(self, switches[arg[0]], arg[1] == "1")
            return ["OK"]
        if arg[:2] in ("SP", "TP") and len(arg) == 3 and arg[2] in "0123456789ABC":
            self.protocol, self.found = arg[2], None
            return ["OK"]
        if arg == "DPN":
            number = self.found or self.protocol
            return [("A" if self.protocol == "0" else "") + number]
        if arg == "DP":
            if self.found is None:
                return ["AUTO" if self.protocol == "0" else NAMES.get(self.protocol, "?")]
            return [("AUTO, " if self.protocol == "0" else "") + NAMES[self.found]]
        if arg == "RV":
            return [f"{self.obd.battery_v if self.obd else 12.4:.1f}V"]
        if arg in ("D", "PC", "CAF0", "CAF1", "AT0", "AT1", "AT2") or (
            arg.startswith("ST") and len(arg) == 4
        ):
            return ["OK"]
        return ["?"]

    # --- OBD requests -----------------------------------------------------------------

    def _obd_lines(self, command: str) -> list[str]:
        if not command or len(command) % 2 or any(ch not in "0123456789ABCDEF" for ch in command):
            return ["?"]
        obd = self.obd
        searching = self.protocol == "0" and self.found is None
        prefix = ["SEARCHING..."] if searching else []
        if obd is None or not obd.ignition_on or self.protocol not in ("0", obd.protocol):
            return [*prefix, "UNABLE TO CONNECT"]
        self.found = obd.protocol
        request = bytes.fromhex(command)
        message = self._message(obd, request)
        if message is None:
            return [*prefix, "NO DATA"]
        return prefix + self._frames(obd, message)

    def _message(self, obd: Obd, request: bytes) -> bytes | list[bytes] | None:
        """The ECU's answer (a list: legacy items sent as separate frames)."""
        mode, pid = request[0], request[1] if len(request) > 1 else None
        diesel = self.scenario.vehicle.diesel is not None and self.scenario.vehicle.petrol is None
        if mode == 0x03:
            return self._dtcs(obd)
        if mode == 0x01 and pid == 0x00:
            return bytes((0x41, 0x00)) + bitmap(MODE01_PIDS)
        if mode == 0x01 and pid == 0x01:
            return bytes((0x41, 0x01)) + monitor_bytes(obd, diesel)
        if mode == 0x01 and pid in LIVE_PIDS:
            return bytes((0x41, pid)) + self._live(obd, pid)
        if mode == 0x09 and pid == 0x00:
            return bytes((0x49, 0x00)) + bitmap(MODE09_PIDS)
        if mode == 0x09 and pid in MODE09_PIDS:
            return self._mode09(obd, pid)
        return None

    def _dtcs(self, obd: Obd) -> bytes | list[bytes]:
        codes = [dtc_bytes(code) for code in obd.dtcs]
        if obd.protocol in CAN:
            return bytes((0x43, len(codes))) + b"".join(codes)
        padded = codes + [b"\0\0"] * (-len(codes) % 3 or (3 if not codes else 0))
        return [bytes((0x43,)) + b"".join(padded[i : i + 3]) for i in range(0, len(padded), 3)]

    def _mode09(self, obd: Obd, pid: int) -> bytes | list[bytes] | None:
        if pid == 0x02:
            vin = self.scenario.vehicle.vin if obd.vin is None else obd.vin
            if not vin:
                return None
            raw = vin.encode("ascii")
            data = raw.rjust(20, b"\0") if obd.protocol not in CAN else raw
            count = 1
        elif pid == 0x04:
            if not obd.calibration_ids:
                return None
            data = b"".join(cid.encode("ascii").ljust(16, b"\0") for cid in obd.calibration_ids)
            count = len(obd.calibration_ids)
        else:
            if not obd.cvns:
                return None
            data = b"".join(bytes.fromhex(cvn) for cvn in obd.cvns)
            count = len(obd.cvns)
        if obd.protocol in CAN:
            return bytes((0x49, pid, count)) + data
        return [bytes((0x49, pid, n + 1)) + data[4 * n : 4 * n + 4] for n in range(len(data) // 4)]

    def _live(self, obd: Obd, pid: int) -> bytes:
        plant = plant_of(self.position)
        engine = plant.engine() if plant is not None else None
        petrol, diesel = self.scenario.vehicle.petrol, self.scenario.vehicle.diesel
        idle = petrol.idle_rpm if petrol else diesel.idle_rpm if diesel else 0.0
        on = engine is not None and engine.on_rollers
        rpm = engine.engine_rpm if on and engine is not None else idle
        speed = engine.speed_kmh if on and engine is not None else 0.0
        throttle = engine.throttle if on and engine is not None else 0.0
        load = 20 + 80 * throttle
        values: dict[int, bytes] = {
            0x04: bytes((round(load * 255 / 100),)),
            0x05: bytes((max(0, min(255, round(obd.coolant_temp_c + 40))),)),
            0x0B: bytes((round(30 + 70 * throttle),)),
            0x0C: min(0xFFFF, round(rpm * 4)).to_bytes(2, "big"),
            0x0D: bytes((min(255, round(speed)),)),
            0x0F: bytes((round(self.scenario.dyno.ambient_temp_c + 10 + 40),)),
            0x10: min(0xFFFF, round(rpm / 1000 * load / 10 * 100)).to_bytes(2, "big"),
            0x11: bytes((round(throttle * 255),)),
        }
        return values[pid]

    # --- framing ----------------------------------------------------------------------

    def _hex(self, data: bytes) -> str:
        return (data.hex(" ") if self.spaces else data.hex()).upper()

    def _frames(self, obd: Obd, message: bytes | list[bytes]) -> list[str]:
        if obd.protocol in CAN:
            assert isinstance(message, bytes)
            return self._can(obd.protocol, message)
        items = message if isinstance(message, list) else [message]
        if not self.headers:
            return [self._hex(item) for item in items]
        lines = []
        for item in items:
            header = (
                bytes((0x48, 0x6B, 0x10))
                if obd.protocol == "3"
                else bytes((0x80 | len(item), 0xF1, 0x10))
            )
            lines.append(self._hex(header + item + bytes((sum8(header + item),))))
        return lines

    def _can(self, protocol: str, message: bytes) -> list[str]:
        if len(message) <= 7:
            frames = [bytes((len(message),)) + message]
        else:
            frames = [bytes((0x10 | len(message) >> 8, len(message) & 0xFF)) + message[:6]]
            rest = message[6:]
            for n in range(0, len(rest), 7):
                frames.append(bytes((0x20 | (n // 7 + 1) & 0x0F,)) + rest[n : n + 7])
        if not self.headers:
            if len(frames) == 1:
                return [self._hex(message)]
            out = [f"{len(message):03X}"]
            sep = " " if self.spaces else ""
            return out + [
                f"{i & 0xF:X}:{sep}{self._hex(f[1:] if i else f[2:])}" for i, f in enumerate(frames)
            ]
        head = "18 DA F1 10" if protocol in EXTENDED else "7E8"
        if not self.spaces:
            head = head.replace(" ", "")
        sep = " " if self.spaces else ""
        return [head + sep + self._hex(frame.ljust(8, b"\0")) for frame in frames]


def _factory(ctx: SimContext) -> Any:
    return Elm327Sim(ctx)


SIM = SimSpec(
    protocol="elm327",
    kind="stream",
    summary="ELM327 OBD adapter and the car's ECU: AT set, Mode 01/03/09, multi-frame VIN",
    factory=_factory,
)
