"""One simulator module per tester protocol (each exposes ``SIM``, a ``SimSpec``)."""
