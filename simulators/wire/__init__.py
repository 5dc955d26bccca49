"""The bytes of each simulated tester, built and parsed here, not with the drivers' codecs.

One module per wire protocol, written from the protocol facts (protocols.md: byte
offsets, scale factors, field order, the checksum rule), in the device's terms. Only the
checksum primitives of ``drivers.checksums`` are shared with the drivers, so a scaling,
field-order or checksum mistake in a codec makes the simulator and the driver disagree
and a test fail (tests/drivers/test_golden_frames.py checks both against the document).
"""
