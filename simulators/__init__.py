"""Simulators of every lane tester: the same bytes as the real device, driven by a vehicle scenario.

Each simulator builds and parses its bytes itself, from the protocol facts written out
again in the device's terms (``simulators.wire`` and the newer device modules), sharing
only the checksum primitives of ``drivers.checksums`` with the drivers, so that a codec
mistake makes driver and simulator disagree (tests/drivers/test_sim_independence.py
holds that line, tests/drivers/test_golden_*.py check both against protocols.md). Each
keeps its state, is exposed over a PTY, a TCP socket (like a serial device server) or as
a Modbus server, and is steered by tests and tools through its use cases and a
``FaultPlan``.
"""
