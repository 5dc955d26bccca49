"""The station side of lanegw: a receiver that verifies, stores and acknowledges every record,
and a live lane page (docs/station.md)."""
