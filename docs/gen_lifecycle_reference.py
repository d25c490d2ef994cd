"""Write docs/reference/lifecycles.md from the lifecycle specs.

    python docs/gen_lifecycle_reference.py          # rewrite the page
    python docs/gen_lifecycle_reference.py --check  # exit 1 if the page is out of date

Everything on the page comes from :mod:`sagafsm.lifecycle` (each lifecycle's one
:class:`~sagafsm.LifecycleSpec`: its states, initial and terminal states, rows, ignored replies,
the ``landed`` and ``waiting`` roles, and the states' docstrings); its diagrams are SVG images that
``docs/hooks.py`` draws from the same specs while the site builds, so the page cannot say
something the specs do not. ``tests/test_docs.py`` fails
when the committed page differs from what this script writes.
"""

from __future__ import annotations

import argparse
import ast
import enum
import inspect
import sys
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sagafsm import LIFECYCLES, LifecycleSpec, lifecycle

PAGE = Path(__file__).parent / "reference" / "lifecycles.md"


def state_docs(states: type[enum.Enum]) -> dict[str, str]:
    """Each member's docstring (the string literal written right after it), by member name."""
    tree = ast.parse(inspect.getsource(lifecycle))
    cls = next(
        node
        for node in tree.body
        if isinstance(node, ast.ClassDef) and node.name == states.__name__
    )
    docs: dict[str, str] = {}
    for node, following in zip(cls.body, cls.body[1:], strict=False):
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.targets[0], ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[node.targets[0].id] = " ".join(following.value.value.split())
    return docs


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _states(spec: LifecycleSpec[Any], states: Iterable[enum.Enum]) -> str:
    return ", ".join(f"`{s.value}`" for s in spec.states if s in set(states))


def section(spec: LifecycleSpec[Any]) -> list[str]:
    name = spec.name
    docs = state_docs(spec.states)
    roles = bool(spec.landed or spec.waiting)
    out = [
        f"## The {name} lifecycle",
        "",
        f"`{name.upper()}_LIFECYCLE`. Initial state: `{spec.initial.value}`. "
        f"Terminal states: {_states(spec, spec.terminal)}.",
    ]
    if spec.landed:
        out += [
            "",
            f"Landed (`landed`): {_states(spec, spec.landed)}: the action's effect has landed, "
            "or may have, and is not undone yet; when the saga aborts, a compensatable step in "
            "one of these states is compensated (a read-only step never is).",
        ]
    if spec.waiting:
        out += [
            "",
            "Waiting (`waiting`): the states in which a step is active, each with the purpose of "
            "the one timer armed meanwhile (`TimerPurpose`); at most one step of a saga is in one.",
        ]
    out += [
        "",
        # Drawn to SVG from the same spec while the site builds (docs/hooks.py): an image that
        # shows offline, where a Mermaid block needs a script from a CDN.
        f"![The {name} lifecycle: every state, and one arrow per transition row, labelled "
        f"with its trigger](../assets/lifecycles/{name}.svg)",
        "",
        f"`sagafsm diagram {name}` prints the same diagram as Mermaid text; "
        f"`sagafsm diagram {name} --output {name}.png` draws it as a PNG.",
        "",
        f"### {name.capitalize()} states",
        "",
    ]
    if roles:
        out += ["| state | terminal | landed | waiting on | meaning |", "|---|---|---|---|---|"]
    else:
        out += ["| state | terminal | meaning |", "|---|---|---|"]
    for state in spec.states:
        terminal = "yes" if state in spec.terminal else ""
        meaning = _cell(docs.get(state.name, ""))
        if roles:
            landed = "yes" if state in spec.landed else ""
            timer = spec.waiting.get(state)
            waits = f"`{timer.value}`" if timer is not None else ""
            out.append(f"| `{state.value}` | {terminal} | {landed} | {waits} | {meaning} |")
        else:
            out.append(f"| `{state.value}` | {terminal} | {meaning} |")
    out += [
        "",
        f"### {name.capitalize()} transitions",
        "",
        "One row per `Transition(trigger, source, dest)` of "
        f"`{name.upper()}_LIFECYCLE.transitions`, in table order.",
        "",
        "| trigger | from | to |",
        "|---|---|---|",
    ]
    out += [f"| `{t.trigger}` | `{t.source.value}` | `{t.dest.value}` |" for t in spec.transitions]
    if spec.operator:
        out += [
            "",
            f"The operator's rows (`{name.upper()}_LIFECYCLE.operator`, dashed in the diagram) "
            "are the only ways out of a final state: the engine never takes them on its own; "
            "an operator's retry request does (`sagafsm retry`), and the checkers accept such a "
            "move only right after the `operator` record of that retry.",
            "",
            "| trigger | from | to |",
            "|---|---|---|",
        ]
        out += [
            f"| `{t.trigger}` | `{t.source.value}` | `{t.dest.value}` |" for t in spec.operator
        ]
    return out


def ignored_section(spec: LifecycleSpec[Any]) -> list[str]:
    by_reason: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for row in spec.ignored:
        by_reason[row.reason][row.trigger].append(row.source.value)
    out = [
        f"## Replies the {spec.name} lifecycle ignores",
        "",
        "A reply that reaches a step in one of these states changes nothing: the engine records it",
        "with the reason (through its `Recorder`) and returns no command. Any other trigger that",
        "is not a transition above is an `IllegalTransition`. One row per `IgnoredTrigger(trigger,",
        f"source, reason)` of `{spec.name.upper()}_LIFECYCLE.ignored`, grouped by reason.",
        "",
        "| triggers | in states | reason |",
        "|---|---|---|",
    ]
    for reason, triggers in by_reason.items():
        # group triggers that share the same set of states
        by_states: dict[tuple[str, ...], list[str]] = defaultdict(list)
        for trigger, states in triggers.items():
            by_states[tuple(states)].append(trigger)
        for states, names in by_states.items():
            out.append(
                f"| {', '.join(f'`{n}`' for n in names)} "
                f"| {', '.join(f'`{s}`' for s in states)} | {_cell(reason)} |"
            )
    return out


def render() -> str:
    lines = [
        "<!-- Generated by docs/gen_lifecycle_reference.py from sagafsm/lifecycle.py. "
        "Do not edit: run the script. -->",
        "",
        "# Lifecycles",
        "",
        "The saga lifecycle and the step lifecycle, exactly as their specs in "
        "`sagafsm/lifecycle.py` declare them: each is one `LifecycleSpec` value "
        "(`SAGA_LIFECYCLE`, `STEP_LIFECYCLE`, both in `LIFECYCLES` by name, all importable from "
        "`sagafsm`). The engine drives every saga and step through these rows; a move that is "
        "not a row here does not exist. "
        "Draw them yourself with `sagafsm diagram saga` or `sagafsm diagram step` "
        "(see [Draw the lifecycles](../how-to/draw-lifecycles.md)); why timeouts and late "
        "replies are handled this way is in [Saga semantics](../explanation/semantics.md).",
    ]
    for spec in LIFECYCLES.values():
        lines += ["", *section(spec)]
    for spec in LIFECYCLES.values():
        if spec.ignored:
            lines += ["", *ignored_section(spec)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the page is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not PAGE.exists() or PAGE.read_text(encoding="utf-8") != text:
            print(f"{PAGE} is out of date: run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(text, encoding="utf-8")
    print(f"wrote {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
