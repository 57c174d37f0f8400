"""Charts drawn on the server as SVG (no script, no CDN): one bar per point, its value in its title and
in data-count, so a reader (and a test) can check the chart against the stored counts."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape


def bars(points: Sequence[tuple[str, int]], width: int = 720, height: int = 160) -> str:
    """A bar chart of (label, count) points: labels under the first and last bars, the highest count at
    the top left (the scale)."""
    if not points:
        return '<p class="empty">No events yet.</p>'
    top = max(count for _, count in points) or 1
    step = min(width / len(points), 48)  # a few days stay bars, not blocks
    bar = max(step - 2, 1)
    shapes = []
    for n, (label, count) in enumerate(points):
        tall = round(count / top * (height - 34), 1)  # room for the scale above, the labels below
        shapes.append(
            f'<rect x="{n * step:.1f}" y="{height - 20 - tall}" width="{bar:.1f}" height="{tall}" '
            f'data-label="{escape(label)}" data-count="{count}"><title>{escape(label)}: {count}</title></rect>'
        )
    first, last = escape(points[0][0]), escape(points[-1][0]) if len(points) > 1 else ""
    return (
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="events per period">'
        + "".join(shapes)
        + f'<text x="2" y="11">{top} event{"" if top == 1 else "s"}</text>'
        + f'<text x="0" y="{height - 4}">{first}</text>'
        + f'<text x="{len(points) * step:.1f}" y="{height - 4}" text-anchor="end">{last}</text></svg>'
    )
