"""Tester drivers: transports, sans-I/O protocol codecs, device drivers in domain terms.

Layers, bottom up (nothing here imports ``gateway``):

- ``checksums``, ``framing`` and ``protocols/``: pure codecs, bytes in, typed messages out.
- ``transport`` and ``bus``: the byte pipes, one owner task per physical port.
- ``modbus/``: the pymodbus adapter and the declarative register-map driver.
- ``devices/``: small async classes speaking the tester's vocabulary.
- ``registry``: protocol name -> driver factory, used by the gateway's config.
"""
