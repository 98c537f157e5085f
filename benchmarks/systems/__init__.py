"""Every system the orchestrator measures, each run in a process of its own.

``python -m benchmarks.systems.<module> <command> ...`` starts one: ``serval_apps``,
``ray_apps`` (Ray Serve), ``litserve_apps`` (LitServe), ``direct`` (the limits: the
handler or the model called in-process). They share the handler code in ``_handlers``
and speak the line protocol in ``_child`` back to ``benchmarks/bench.py``.
"""
