"""``python -m gateway`` is ``lanegw``."""

from gateway.cli.main import app

app()
