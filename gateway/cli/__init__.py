"""The ``lanegw`` command line (Typer + Rich)."""
