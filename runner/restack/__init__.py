"""Re-stacking an archive on Dask with the live stacker's functions (docs/scale.md).

:func:`runner.restack.select.select_groups` picks lights from image indexes and groups them;
:func:`runner.restack.graph.build_plan` makes the task graph; :func:`runner.restack.run.run`
runs it in-process or on a cluster; ``nightrunner restack`` (``runner.restack.cli``) is the
command.
"""
