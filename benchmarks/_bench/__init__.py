"""The orchestrator's parts (``benchmarks/bench.py`` is the command).

- ``cells``: one measured cell (a system in a scenario), serval's ratios to the others;
- ``children``: the parent side of the protocol with each system's process;
- ``report``: the one table, the result file and the Markdown summary;
- ``chart``: the PNG, one panel per scenario.
"""
