"""hpctf's own cost, as ratios against the plain alternative: ``python -m benchmarks``.

See benchmarks/README.md.
"""
