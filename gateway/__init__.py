"""lanegw: the inspection-lane edge daemon (config, buses, supervisors, outbox, MQTT, CLI)."""

__version__ = "0.1.0"
