"""What every benchmark shares: load generation, statistics, result files, servers.

- ``loadgen``: drive an HTTP endpoint at fixed concurrency (``wrk``, else ``pyload``).
- ``stats``: percentiles, the ``Result`` row, comparisons against a baseline.
- ``results``: JSON result files with machine info, and ``rich`` tables.
- ``procs``: a server in a subprocess, started once its port answers.
"""
