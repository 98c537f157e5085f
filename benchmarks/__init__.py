"""serval's benchmarks: each script prints ratios measured side by side in one run.

Run one with ``python benchmarks/<name>.py``; the shared machinery is in ``_harness``.
"""
