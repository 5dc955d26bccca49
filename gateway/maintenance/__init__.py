"""Keeping a lane legal: daily equipment checks, calibrations, and the lockouts they drive."""
