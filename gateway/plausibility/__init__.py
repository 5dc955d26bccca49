"""Plausibility checks: flags on records whose raw data look manipulated (docs/records.md)."""

from gateway.plausibility.checker import PlausibilityChecker
from gateway.plausibility.fingerprints import FingerprintBook

__all__ = ["FingerprintBook", "PlausibilityChecker"]
