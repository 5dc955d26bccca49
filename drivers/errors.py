"""The driver exception tree: every failure below the gateway is a ``DriverError``.

Who is to blame decides the class (the h11 split): ``ProtocolError`` means the peer sent
bytes we cannot accept, ``LocalProtocolError`` means we asked for something the protocol
cannot express. Link failures (``TransportError``) and silence (``ResponseTimeout``) are
retried by the bus owner and the device supervisor; a device that says no
(``DeviceRefused``) or reports a fault (``DeviceFault``) is not a link problem.
"""

from __future__ import annotations


class DriverError(Exception):
    """Base of every error raised by ``drivers``."""


class TransportError(DriverError):
    """The byte pipe failed: port missing, connection refused or dropped."""


class PortUnavailable(TransportError):
    """The port could not be opened (USB adapter unplugged, device server down)."""


class ConnectionLost(TransportError):
    """An open port went away mid-use."""


class ResponseTimeout(DriverError, TimeoutError):
    """The device did not answer (or stopped streaming) within the response timeout."""


class ProtocolError(DriverError):
    """The peer sent something the protocol does not allow."""


class FrameError(ProtocolError):
    """Bytes that do not form a valid frame; the decoder has already skipped them."""

    def __init__(self, message: str, raw: bytes = b"") -> None:
        super().__init__(message)
        self.raw = raw


class ChecksumError(FrameError):
    """A frame whose checksum does not match its contents."""


class UnexpectedResponse(ProtocolError):
    """A well-formed frame that is not an answer to what was asked."""


class LocalProtocolError(DriverError, ValueError):
    """We asked for something the protocol cannot express (a value out of range...)."""


class NotSupported(LocalProtocolError):
    """The device (or its protocol) has no such function, e.g. ambient on an NHC-03."""


class DeviceRefused(DriverError):
    """The device answered NAK or an error code."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class DeviceFault(DriverError):
    """The device reports a fault state (sensor fault, calibration failed...)."""


class DeviceBusy(DriverError):
    """The device is busy with another action (warming up, leak check running)."""
