"""A sequence diagram drawn with matplotlib (the only module here that imports it)."""

from __future__ import annotations

import io

from .._extras import require

__all__ = ["draw_sequence"]

_COLUMN = 2.6
_ROW = 0.9


def draw_sequence(
    participants: list[str], messages: list[tuple[str, str, str, str, bool]], title: str
) -> bytes:
    """Lifelines for ``participants``; per message, an arrow labelled with its event from sender
    to receiver (red on the way back: a failure or a compensation's event), and under it what the
    receiver does. PNG bytes; :class:`~sagafsm.MissingExtra` without matplotlib."""
    require("plots", "a sequence diagram")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = {p: i * _COLUMN for i, p in enumerate(participants)}
    height = len(messages) * _ROW + 0.3
    figure, axes = plt.subplots(
        figsize=(max(6.0, len(participants) * _COLUMN * 0.95), 1.2 + height * 0.75)
    )
    for name, at in x.items():
        axes.plot([at, at], [0.2, -height - 0.2], color="#bbbbbb", linewidth=1, zorder=0)
        axes.text(
            at,
            0.35,
            name,
            ha="center",
            va="bottom",
            fontsize=9,
            weight="bold",
            bbox={"boxstyle": "round", "facecolor": "#eef3fb", "edgecolor": "#333333"},
        )
    for row, (sender, receiver, event, doing, back) in enumerate(messages):
        y = -row * _ROW - 0.3
        undo = "undoes" in doing
        color = "#c5221f" if back else "#1a4d8f"
        if sender == receiver:
            axes.annotate(
                "",
                xy=(x[receiver] + 0.05, y - 0.18),
                xytext=(x[sender] + 0.05, y + 0.05),
                arrowprops={"arrowstyle": "->", "connectionstyle": "arc3,rad=-1.2", "color": color},
            )
            axes.text(x[sender] + 0.45, y + 0.05, event, fontsize=7, va="bottom", color=color)
        else:
            axes.annotate(
                "",
                xy=(x[receiver], y),
                xytext=(x[sender], y),
                arrowprops={"arrowstyle": "->", "color": color},
            )
            axes.text(
                (x[sender] + x[receiver]) / 2,
                y + 0.04,
                event,
                ha="center",
                va="bottom",
                fontsize=7,
                color=color,
            )
        axes.text(
            x[receiver],
            y - 0.3,
            doing,
            ha="center",
            va="center",
            fontsize=6.5,
            style="italic",
            bbox={
                "boxstyle": "round",
                "facecolor": "#fdecea" if undo else "white",
                "edgecolor": "#999999",
            },
        )
    axes.set_xlim(-_COLUMN / 2, (len(participants) - 0.5) * _COLUMN)
    axes.set_ylim(-height - 0.4, 0.8)
    axes.set_title(title + "  (time runs down; each arrow is one event)", fontsize=9)
    axes.axis("off")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()
