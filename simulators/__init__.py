"""Simulators of every lane tester: the same bytes as the real device, driven by a vehicle scenario.

Each simulator reuses the codec of its protocol from ``drivers.protocols`` in the device
role, keeps its state (``State``), is exposed over a PTY, a TCP socket (like a serial
device server) or as a Modbus server (``Service``), and is steered by tests and tools
through its use cases and a ``FaultPlan``.
"""
