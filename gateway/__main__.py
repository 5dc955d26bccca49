"""``python -m gateway`` is ``lanegw`` (the lean launcher: gateway/cli/entry.py)."""

from gateway.cli.entry import main

main()
