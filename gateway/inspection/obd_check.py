"""OBD check (OBD检查, GB 18285-2018 / GB 3847-2018 §7) as a sans-I/O machine.

States::

    IDLE -> CONNECTING -> READING (one command after the other) -> DONE

The reader connects to the vehicle, then reads the VIN (Mode 09), MIL and DTC count and
readiness (Mode 01 PID 01), the stored DTCs (Mode 03), calibration ids and CVNs (Mode 09).
Judged, by the rules of ``obd-checks.yaml`` (all recalled, none read in the standard):
MIL on fails; a VIN that differs from the order's fails (a vehicle that reports none is
recorded, not judged); more than the allowed number of incomplete readiness monitors
fails; no communication fails (or aborts, by a switch). Optional reads a vehicle or
adapter does not support (CVNs on an old car) are recorded as not available.
"""

from __future__ import annotations

import enum
from typing import Any, Final

from drivers.devices.dyno_api import MilStatus
from gateway.inspection.items import overall
from gateway.inspection.sansio import (
    Action,
    Command,
    DeviceFailed,
    Event,
    Finish,
    OperatorAbort,
    ProcedureMachine,
    Reply,
    Say,
)
from gateway.limits import LimitTable, measured
from gateway.records import Measurement, Verdict

#: the reads after ``connect``, in order; the first three are needed for a judgement
READS: Final = (
    "read_vin", "read_mil", "read_readiness", "read_dtcs", "read_calibration_ids", "read_cvns",
)  # fmt: skip
REQUIRED: Final = frozenset({"read_mil", "read_readiness"})


class State(enum.Enum):
    """Steps of the OBD item."""

    IDLE = enum.auto()
    CONNECTING = enum.auto()
    READING = enum.auto()
    DONE = enum.auto()


class ObdCheckMachine(ProcedureMachine):
    """The OBD check, events in, actions out."""

    name = "OBD"

    def __init__(self, table: LimitTable, order_vin: str) -> None:
        super().__init__()
        self.table, self.order_vin = table, order_vin
        self.state = State.IDLE
        self.answers: dict[str, Any] = {}
        self.errors: dict[str, str] = {}
        self.protocol: str | None = None
        self.next_read = 0

    def start(self, t_s: float) -> list[Action]:
        """Connect to the vehicle."""
        self.state = State.CONNECTING
        return [
            Say("obd_connect", "ignition on, engine running: connecting to the vehicle's OBD"),
            Command("obd", "connect", reply=True),
        ]

    def handle(self, event: Event) -> list[Action]:
        """One reply (or failure) after the other."""
        if self.finish is not None:
            return []
        if isinstance(event, OperatorAbort):
            return self.done(Finish(Verdict.ABORTED, reason=f"OBD check stopped: {event.reason}"))
        if self.state is State.CONNECTING:
            if isinstance(event, DeviceFailed):
                return self._no_communication(f"connect: {event.error}")
            assert isinstance(event, Reply)
            self.protocol = str(event.value)
            self.state = State.READING
            connected = Say(
                "obd_connected", f"vehicle protocol {self.protocol}", {"protocol": self.protocol}
            )
            return [connected, *self._next()]
        if isinstance(event, DeviceFailed):
            if event.method in REQUIRED:
                return self._no_communication(f"{event.method}: {event.error}")
            self.errors[event.method] = event.error
        elif isinstance(event, Reply):
            self.answers[event.method] = event.value
        return self._next()

    def _next(self) -> list[Action]:
        if self.next_read < len(READS):
            method = READS[self.next_read]
            self.next_read += 1
            return [Command("obd", method, reply=True)]
        return self._judge()

    def _no_communication(self, error: str) -> list[Action]:
        self.state = State.DONE
        reason = f"no OBD communication ({error})"
        if not self.table.flag("obd_communication_failure_fails"):
            return self.done(Finish(Verdict.ABORTED, reason=reason))
        m = Measurement(name="obd_communication", value=False, verdict=Verdict.FAIL)
        return [Say("obd_result", reason), *self.done(Finish(Verdict.FAIL, (m,), reason))]

    def _judge(self) -> list[Action]:
        self.state = State.DONE
        table = self.table
        mil: MilStatus = self.answers["read_mil"]
        readiness: dict[str, str] = self.answers["read_readiness"]
        vin = self.answers.get("read_vin")
        incomplete = sorted(k for k, v in readiness.items() if v == "incomplete")
        judged = [
            measured("obd_communication", True),
            table.judge("obd_mil_on", "obd_mil_on", int(mil.mil_on)),
            table.judge("obd_readiness_incomplete", "obd_readiness_incomplete", len(incomplete)),
        ]
        if vin is None:
            fails = table.flag("obd_vin_unsupported_fails")
            verdict = Verdict.FAIL if fails else None
            judged.append(Measurement(name="obd_vin_reported", value=False, verdict=verdict))
        else:
            judged.append(
                table.judge("obd_vin_mismatch", "obd_vin_mismatch", int(vin != self.order_vin))
            )
        dtcs: list[str] = self.answers.get("read_dtcs") or []
        if dtcs and not mil.mil_on and table.flag("obd_dtcs_with_mil_off_fail"):
            judged.append(Measurement(name="obd_dtcs_present", value=True, verdict=Verdict.FAIL))
        details = [
            measured("obd_protocol", self.protocol),
            measured("obd_vin", vin),
            measured("obd_order_vin", self.order_vin),
            measured("obd_dtc_count", mil.dtc_count),
            measured("obd_dtcs", ",".join(dtcs) or None),
            measured("obd_readiness", ",".join(f"{k}:{v}" for k, v in sorted(readiness.items()))),
            measured("obd_readiness_incomplete_monitors", ",".join(incomplete) or None),
            measured("obd_compression_ignition", mil.compression_ignition),
            measured("obd_calibration_ids", _joined(self.answers.get("read_calibration_ids"))),
            measured("obd_cvns", _joined(self.answers.get("read_cvns"))),
            *(measured(f"obd_{m.removeprefix('read_')}_error", e) for m, e in self.errors.items()),
        ]
        verdict = overall([m.verdict for m in judged])
        why = [m.name for m in judged if m.verdict is Verdict.FAIL]
        say = Say(
            "obd_result",
            f"OBD: {verdict.value}" + (f" ({', '.join(why)})" if why else ""),
            {"verdict": verdict.value, "mil_on": mil.mil_on, "dtc_count": mil.dtc_count,
             "vin_match": vin == self.order_vin if vin is not None else None,
             "readiness_incomplete": len(incomplete)},
        )  # fmt: skip
        reason = f"failed: {', '.join(why)}" if why else None
        return [say, *self.done(Finish(verdict, (*judged, *details), reason))]

    def evidence(self) -> dict[str, Any]:
        """Everything the vehicle answered, as read."""
        mil = self.answers.get("read_mil")
        return {
            "method": self.name,
            "protocol": self.protocol,
            "vin": self.answers.get("read_vin"),
            "mil": None if mil is None else {"mil_on": mil.mil_on, "dtc_count": mil.dtc_count},
            "readiness": self.answers.get("read_readiness"),
            "dtcs": self.answers.get("read_dtcs"),
            "calibration_ids": self.answers.get("read_calibration_ids"),
            "cvns": self.answers.get("read_cvns"),
            "errors": self.errors,
        }


def _joined(values: list[str] | None) -> str | None:
    return ",".join(values) if values else None
