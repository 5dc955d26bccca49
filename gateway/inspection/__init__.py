"""Inspections: orders in, test items run as state machines, judged records out."""
