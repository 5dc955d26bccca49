"""Modbus RTU/TCP: one generic driver driven by declarative register maps.

- ``decode``: register words <-> values (types, byte/word order, scale/offset); pure.
- ``planner``: groups points into as few read requests as possible; pure.
- ``registers``: the map model (points, commands, addressing, validation).
- ``maps``: the built-in maps (YAML) and ``load_map``.
- ``adapter``: the only module that imports pymodbus's client API.
- ``bus``: ``ModbusBus``, the owner task of one Modbus link.

The driver itself is ``drivers.devices.modbus_generic``; the reference is
docs/protocols/modbus.md. Importing this package does not import pymodbus.
"""
