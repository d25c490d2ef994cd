"""The readable report of a run, as printed by ``sagafsm simulate``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..checks import Violation
from .config import SimulationConfig
from .result import RunResult

__all__ = [
    "format_report",
    "format_seed_summary",
    "verdict_lines",
    "not_judged",
    "judged_violations",
    "plural",
]

STARVED_DOWN_SHARE = 0.5
"""An orchestrator expected to be down at least this share of the time, with crashes that never
stop, may leave sagas unfinished without anything being wrong: see :func:`not_judged`."""


def plural(count: int, word: str, many: str | None = None) -> str:
    """``1 try``, ``2 tries``: the count and the word in the number it takes."""
    return f"{count} {word if count == 1 else many or word + 's'}"


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"


_REASONS_SHOWN = 8
"""Why sagas failed or need an operator: the most frequent reasons the report lists."""


def not_judged(result: RunResult, config: SimulationConfig | None) -> str | None:
    """Why the run's termination violations say nothing, or None when they count.

    Termination is a property of what happens once faults stop. A run that stopped while a
    fault window of its plan was still open (a partition, a crash) did not get there; nor did a
    run whose orchestrator is expected to be down most of the time (``orchestrator_crash_rate``
    times the mean downtime, as a share of each crash-restart cycle) with crashes that never
    stop (no ``faults.until``). Either can hit the termination bound with correct code: that is
    the fault plan's doing, and the report says so rather than calling each unfinished saga a
    violation."""
    if config is None or not result.stopped or not result.violation_counts.get("termination"):
        return None
    unfinished = plural(result.outcomes.get("unfinished", 0), "saga")
    bound = f"termination_bound ({config.termination_bound:g} s)"
    faults = config.faults
    window = _window_still_open(config, result.sim_time)
    if window is not None:
        return (
            f"termination: {window} when the run stopped at {result.sim_time:.2f} s, so "
            f"{unfinished} could not finish within {bound}; termination is judged once faults "
            "stop: end the window earlier"
        )
    busy = faults.orchestrator_crash_rate * faults.orchestrator_downtime.mean
    share = busy / (1 + busy)
    if faults.until is not None or share < STARVED_DOWN_SHARE:
        return None
    return (
        f"termination: with {faults.orchestrator_crash_rate:g} orchestrator crashes per s and "
        f"a mean downtime of {faults.orchestrator_downtime.mean:g} s, the orchestrator is down "
        f"about {share * 100:.1f}% of the time and the crashes never stop, so {unfinished} "
        f"could not finish within {bound}; termination is judged once faults stop: set "
        "faults.until, or lower the crash rate"
    )


def _window_still_open(config: SimulationConfig, now: float) -> str | None:
    """A fault window of the plan still open at ``now`` (a partition, a crash), said in words."""
    faults = config.faults
    for kind, windows in (("partitioned", faults.partitions), ("down", faults.participant_crashes)):
        for window in windows:
            if window.start <= now < window.end:
                return f"participant {window.participant!r} was {kind} until {window.end:g} s"
    for crash in faults.orchestrator_crashes:
        if crash.start <= now < crash.end:
            return f"the orchestrator was down until {crash.end:g} s"
    return None


def judged_violations(result: RunResult, unjudged: str | None) -> list[Violation]:
    """The run's violations, without the termination ones :func:`not_judged` explains."""
    if unjudged is None:
        return list(result.violations)
    return [v for v in result.violations if v.property != "termination"]


def outcome_lines(
    outcomes: Mapping[str, int], reasons: Mapping[str, Mapping[str, int]], sagas: int
) -> list[str]:
    """Each outcome's count and share, with its most frequent reasons (``simulate``'s report and
    ``run``'s)."""
    lines = []
    for outcome, count in outcomes.items():
        share = count / sagas * 100 if sagas else 0.0
        lines.append(f"  {outcome:<20} {count:>9}  {share:5.1f}%")
        listed = list(reasons.get(outcome, {}).items())
        for reason, times in listed[:_REASONS_SHOWN]:
            lines.append(f"    {times:>6}  {reason}")
        if len(listed) > _REASONS_SHOWN:
            rest = sum(times for _, times in listed[_REASONS_SHOWN:])
            more = plural(len(listed) - _REASONS_SHOWN, "more reason")
            lines.append(f"    {rest:>6}  ({more}: see --json)")
    return lines


def duration_lines(latency: Mapping[str, Any]) -> list[str]:
    """The saga duration table: all sagas, then each outcome."""
    lines = ["saga duration       p50        p95        p99        max"]
    for name, row in [("all", latency), *latency["by_outcome"].items()]:
        lines.append(
            f"  {name:<17} "
            + " ".join(f"{_seconds(row[k]):>10}" for k in ("p50", "p95", "p99", "max"))
        )
    return lines


def format_report(result: RunResult, config: SimulationConfig | None = None) -> str:
    """The text report; with the run's ``config``, a run starved by its own crash plan says so
    instead of listing termination violations (:func:`not_judged`)."""
    metrics = result.metrics
    latency = metrics["latency"]
    choreographed = config is not None and config.style == "choreography"
    lines = [
        f"sagafsm simulate {result.scenario}: {result.sagas} sagas, seed {result.seed}"
        + (", choreographed" if choreographed else ""),
        "",
        "outcomes",
    ]
    lines += outcome_lines(result.outcomes, result.reasons, result.sagas)
    lines += [
        "",
        f"throughput          {metrics['throughput_per_s']:.1f} completed sagas per simulated s",
        f"goodput             {metrics['goodput'] * 100:.1f}% of finished sagas completed",
        "",
    ]
    lines += duration_lines(latency)
    messages = result.messages
    lines += [
        "",
        f"messages            {messages['sent']} sent, {messages['delivered']} delivered, "
        f"{messages['dropped']} dropped, {messages['duplicated']} duplicated, "
        f"{messages['delayed']} delayed",
        "faults injected     "
        + (", ".join(f"{k} {v}" for k, v in result.faults.items()) or "none"),
        "orchestrator        none: choreographed (orchestrator crashes do not apply)"
        if choreographed
        else f"orchestrator        {plural(metrics['orchestrator_crashes'], 'crash', 'crashes')}, "
        f"{plural(metrics['store_writes'], 'store write')}",
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
    unjudged = not_judged(result, config)
    counts = dict(result.violation_counts)
    if unjudged is not None:
        counts.pop("termination", None)
    lines += verdict_lines(result.stopped, judged_violations(result, unjudged), counts, unjudged)
    return "\n".join(lines)


_VIOLATIONS_SHOWN = 20


def verdict_lines(
    stopped: str | None,
    violations: Sequence[Violation],
    counts: Mapping[str, int] | None = None,
    unjudged: str | None = None,
) -> list[str]:
    """The end of a report, simulated or real: why the run stopped early, what it could not
    judge (``unjudged``, see :func:`not_judged`), the violations by property (``counts``, when a
    run keeps counting past the violations it keeps), and the first twenty."""
    lines = [f"STOPPED EARLY       {stopped}"] if stopped else []
    if unjudged:
        lines.append(f"NOT JUDGED          {unjudged}")
    if counts is None:
        counts = {}
        for violation in violations:
            counts[violation.property] = counts.get(violation.property, 0) + 1
    counts = {name: n for name, n in counts.items() if n}
    total = sum(counts.values())
    if not total:
        return [*lines, "violations          none"]
    lines.append(f"VIOLATIONS ({total:,})")
    width = max(len(name) for name in counts)
    for name, n in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        lines.append(f"  {name:<{width}}  {n:>9,}")
    lines.append("first violations" if total > 1 else "the violation")
    for violation in violations[:_VIOLATIONS_SHOWN]:
        where = f"saga {violation.saga_id}" if violation.saga_id else "run"
        lines.append(f"  [{violation.property}] {where}: {violation.detail}")
    if total > _VIOLATIONS_SHOWN:
        lines.append(f"  ... and {total - _VIOLATIONS_SHOWN:,} more (see --json)")
    return lines


def _judged(result: RunResult, config: SimulationConfig | None) -> list[Violation]:
    return judged_violations(result, not_judged(result, config))


_SEED_UNITS: dict[str, tuple[str, float]] = {
    "throughput_per_s": ("completed sagas/s", 1.0),
    "goodput": ("% completed", 100.0),
    "compensation_rate": ("% compensated", 100.0),
    "in_flight_mean": ("sagas in flight", 1.0),
}
"""How each figure of the summary is shown: its unit and the factor to it (latencies: below)."""


def format_seed_summary(
    results: list[RunResult], summary: dict[str, Any], config: SimulationConfig | None = None
) -> str:
    """One line per seed, then each figure's mean and 95% confidence interval, each in one
    unit throughout (latencies all in ms, or all in s when one of them reaches a second). With
    the runs' ``config``, violations :func:`not_judged` explains are not counted."""
    latencies = [r.metrics["latency"]["p99"] for r in results]
    latencies += [stats["high"] for name, stats in summary.items() if name.startswith("latency")]
    in_seconds = any(v is not None and v >= 1 for v in latencies)
    unit, scale = ("s", 1.0) if in_seconds else ("ms", 1000.0)

    def latency(value: float | None) -> str:
        return "-" if value is None else f"{value * scale:.{2 if in_seconds else 1}f}"

    lines = [
        plural(len(results), "seed"),
        f"  seed   completed  failed  operator  throughput/s  p99 ({unit})",
    ]
    for r in results:
        lines.append(
            f"  {r.seed:<6} {r.outcomes.get('completed', 0):>9} {r.outcomes.get('failed', 0):>7} "
            f"{r.outcomes.get('operator_required', 0):>9} {r.metrics['throughput_per_s']:>12.1f}"
            f"  {latency(r.metrics['latency']['p99']):>8}"
            + (f"  VIOLATIONS {len(judged):,}" if (judged := _judged(r, config)) else "")
        )
    lines.append("mean and 95% confidence interval across seeds (Student's t)")
    for name, stats in summary.items():
        shown, factor = _SEED_UNITS.get(name, (unit, scale))
        lines.append(
            f"  {name:<18} {stats['mean'] * factor:>10.4g}  "
            f"[{stats['low'] * factor:.4g}, {stats['high'] * factor:.4g}]  {shown}"
        )
    return "\n".join(lines)
