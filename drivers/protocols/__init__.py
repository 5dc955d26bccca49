"""Sans-I/O protocol codecs: bytes in, typed messages out; no I/O, no asyncio."""
