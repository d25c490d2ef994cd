"""The readable report of a run, as printed by ``sagafsm simulate``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..checks import Violation
from .result import RunResult

__all__ = ["format_report", "format_seed_summary"]


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"


_REASONS_SHOWN = 8
"""Why sagas failed or need an operator: the most frequent reasons the report lists."""


def format_report(result: RunResult) -> str:
    metrics = result.metrics
    latency = metrics["latency"]
    lines = [
        f"sagafsm simulate {result.scenario}: {result.sagas} sagas, seed {result.seed}",
        "",
        "outcomes",
    ]
    for outcome, count in result.outcomes.items():
        share = count / result.sagas * 100 if result.sagas else 0.0
        lines.append(f"  {outcome:<20} {count:>9}  {share:5.1f}%")
        reasons = list(result.reasons.get(outcome, {}).items())
        for reason, times in reasons[:_REASONS_SHOWN]:
            lines.append(f"    {times:>6}  {reason}")
        if len(reasons) > _REASONS_SHOWN:
            rest = sum(times for _, times in reasons[_REASONS_SHOWN:])
            lines.append(
                f"    {rest:>6}  ({len(reasons) - _REASONS_SHOWN} more reasons: see --json)"
            )
    lines += [
        "",
        f"throughput          {metrics['throughput_per_s']:.1f} completed sagas per simulated s",
        f"goodput             {metrics['goodput'] * 100:.1f}% of finished sagas completed",
        "",
        "saga duration       p50        p95        p99        max",
    ]
    rows = [("all", latency), *latency["by_outcome"].items()]
    for name, row in rows:
        lines.append(
            f"  {name:<17} "
            + " ".join(f"{_seconds(row[k]):>10}" for k in ("p50", "p95", "p99", "max"))
        )
    messages = result.messages
    lines += [
        "",
        f"messages            {messages['sent']} sent, {messages['delivered']} delivered, "
        f"{messages['dropped']} dropped, {messages['duplicated']} duplicated, "
        f"{messages['delayed']} delayed",
        "faults injected     "
        + (", ".join(f"{k} {v}" for k, v in result.faults.items()) or "none"),
        f"orchestrator        {metrics['orchestrator_crashes']} crashes, "
        f"{metrics['store_writes']} store writes",
        "participants        "
        + ", ".join(
            f"{name} {p['utilisation'] * 100:.0f}% busy"
            for name, p in metrics["participants"].items()
        ),
        "",
        f"simulated time      {result.sim_time:.2f} s",
        f"wall time           {result.wall_seconds:.2f} s "
        f"({result.sagas_per_wall_second:,.0f} sagas/s, {result.events:,} trace records)",
        f"trace digest        {result.digest}",
        "",
    ]
    lines += verdict_lines(result.stopped, result.violations)
    return "\n".join(lines)


def verdict_lines(stopped: str | None, violations: Sequence[Violation]) -> list[str]:
    """The end of a report, simulated or real: why the run stopped early, and its violations
    (the first 20)."""
    lines = [f"STOPPED EARLY       {stopped}"] if stopped else []
    if not violations:
        return [*lines, "violations          none"]
    lines.append(f"VIOLATIONS ({len(violations)})")
    for violation in violations[:20]:
        where = f"saga {violation.saga_id}" if violation.saga_id else "run"
        lines.append(f"  [{violation.property}] {where}: {violation.detail}")
    if len(violations) > 20:
        lines.append(f"  ... and {len(violations) - 20} more (see --json)")
    return lines


def format_seed_summary(results: list[RunResult], summary: dict[str, Any]) -> str:
    """One line per seed, then each figure's mean and 95% confidence interval."""
    lines = [f"{len(results)} seeds", "  seed   completed  failed  operator  throughput/s   p99"]
    for r in results:
        p99 = r.metrics["latency"]["p99"]
        lines.append(
            f"  {r.seed:<6} {r.outcomes.get('completed', 0):>9} {r.outcomes.get('failed', 0):>7} "
            f"{r.outcomes.get('operator_required', 0):>9} {r.metrics['throughput_per_s']:>12.1f}"
            f"   {_seconds(p99):>9}"
            + (f"  VIOLATIONS {sum(r.violation_counts.values())}" if r.violations else "")
        )
    lines.append("mean and 95% confidence interval across seeds (Student's t)")
    for name, stats in summary.items():
        lines.append(
            f"  {name:<18} {stats['mean']:>12.4g}  [{stats['low']:.4g}, {stats['high']:.4g}]"
        )
    return "\n".join(lines)
