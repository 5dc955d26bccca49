"""Shared fixtures. Device tests run drivers against simulators over real byte streams."""
