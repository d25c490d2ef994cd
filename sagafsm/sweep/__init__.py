"""Parameter sweeps: a design of configurations, each over several seeds, on any
``concurrent.futures.Executor``, into a tidy table cached run by run.

>>> from sagafsm.sweep import plan_sweep, run_sweep
>>> plan = plan_sweep("order_fulfillment", {"faults.loss": "0:0.2:3"}, seeds=2)  # doctest: +SKIP
>>> table = run_sweep(plan, executor=pool, cache="out/runs")                     # doctest: +SKIP

Like :mod:`sagafsm.sim`, which it drives, this package is not imported by ``import sagafsm``.
"""

from __future__ import annotations

from .designs import DESIGNS, Design, design_points
from .executors import dask_executor, execute, process_pool, useful_workers
from .params import Parameter, parameter_from_value, parse_parameter
from .rows import METRICS, RESULT_COLUMNS
from .runner import PlannedRun, RunFailed, SweepPlan, plan_sweep, run_sweep
from .table import SweepTable, read_table

__all__ = [
    "DESIGNS",
    "Design",
    "METRICS",
    "Parameter",
    "PlannedRun",
    "RESULT_COLUMNS",
    "RunFailed",
    "SweepPlan",
    "SweepTable",
    "dask_executor",
    "design_points",
    "execute",
    "parameter_from_value",
    "parse_parameter",
    "plan_sweep",
    "process_pool",
    "read_table",
    "run_sweep",
    "useful_workers",
]
