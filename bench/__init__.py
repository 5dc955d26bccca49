"""The lanegw benchmark suite (issue 7): ``python -m bench`` or ``scripts/bench``.

Not part of the test run (``tests/bench/test_bench_smoke.py`` runs it for a few seconds so
it cannot rot). Method, figures and the fixes they led to: docs/performance.md.
"""
