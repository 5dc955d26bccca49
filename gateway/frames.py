"""Raw frames behind each item, kept as evidence.

While an item runs, every byte the gateway writes to or reads from the devices it uses is
recorded with a timestamp; at the end of the item the capture is stored in the evidence
archive and its hash goes into the record. A man in the middle that rewrites a tester's
values then leaves two disagreeing stories: the raw frames and the tester's own memory.
Outside captures, recording costs a dictionary lookup per chunk.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator
from typing import Final

#: chunks kept per device and capture; past this the capture notes that it was cut
MAX_CHUNKS: Final = 200_000


class Capture:
    """The frames of one item."""

    def __init__(self, devices: Iterable[str]) -> None:
        self.devices = set(devices)
        self.chunks: list[tuple[float, str, str, str]] = []
        self.truncated = False

    def add(self, device: str, outgoing: bool, data: bytes) -> None:
        """Record one chunk (time, device, tx/rx, hex)."""
        if len(self.chunks) >= MAX_CHUNKS:
            self.truncated = True
            return
        self.chunks.append((round(time.time(), 6), device, "tx" if outgoing else "rx", data.hex()))

    def document(self, only: Iterable[str] = ()) -> dict[str, object]:
        """The evidence document, limited to the devices in ``only`` when given."""
        keep = set(only) or self.devices
        frames = [chunk for chunk in self.chunks if chunk[1] in keep]
        return {"devices": sorted(keep), "frames": frames, "truncated": self.truncated}


class FrameRecorder:
    """Routes bus frames to the captures that want them."""

    def __init__(self) -> None:
        self._captures: dict[str, list[Capture]] = {}

    def frame(self, device: str, outgoing: bool, data: bytes) -> None:
        """Called by the bus observers for every chunk."""
        for capture in self._captures.get(device, ()):
            capture.add(device, outgoing, data)

    @contextlib.contextmanager
    def capture(self, devices: Iterable[str]) -> Iterator[Capture]:
        """Record the frames of ``devices`` while the block runs."""
        capture = Capture(devices)
        for device in capture.devices:
            self._captures.setdefault(device, []).append(capture)
        try:
            yield capture
        finally:
            for device in capture.devices:
                self._captures[device].remove(capture)
