"""Several simulated testers on one RS-485 line (one endpoint).

Every device hears every byte, as on a real multi-drop bus, and answers only requests
for its own address; each keeps its own ``FaultPlan``, so one can fall silent while the
others go on answering.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from simulators.endpoint import SimLink
from simulators.faults import FaultPlan


class MultiDrop:
    """A stream-simulator handler that fans one line out to several devices."""

    nak = b"\x15"

    def __init__(self, members: Sequence[tuple[Any, FaultPlan]]) -> None:
        self._members = list(members)

    async def handle(self, link: SimLink) -> None:
        """Serve one connection of the shared line."""
        children = []
        async with asyncio.TaskGroup() as group:
            for sim, faults in self._members:
                child = SimLink(faults, sim.nak)
                child.attach(link.write_raw)
                children.append(child)
                group.create_task(sim.handle(child))
            while True:
                data = await link.read()
                for child in children:
                    child.deliver(data)
