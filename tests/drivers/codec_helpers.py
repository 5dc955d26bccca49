"""Helpers shared by the codec tests."""

from __future__ import annotations

import itertools
from typing import TypeVar

from drivers.errors import FrameError
from drivers.framing import NEED_DATA, FrameDecoder

M = TypeVar("M")


def feed_in_chunks(decoder: FrameDecoder[M], data: bytes, cuts: list[int]) -> list[M]:
    """Feed ``data`` split at ``cuts`` and return the messages; frame errors are skipped,
    anything else propagates."""
    messages: list[M] = []
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    for start, end in itertools.pairwise(points):
        decoder.feed(data[start:end])
        while True:
            try:
                message = decoder.next_message()
            except FrameError:
                continue
            if message is NEED_DATA:
                break
            messages.append(message)
    return messages
