"""The dashboard's HTML: one page, its cards rendered here (the server), refreshed by a few
lines of JavaScript that fetch ``api/state`` and swap the cards in. Every value that comes
from outside (a key, a name, a URL) is escaped here, in one place; the script inserts only
HTML this module wrote. No build step, no CDN, nothing fetched from elsewhere."""

from __future__ import annotations

import html
from typing import Any

#: The chart's drawing area, px.
WIDTH, HEIGHT = 560, 120

_COLORS = {
    "allowed": "#2b8a3e",
    "blocked": "#e03131",
    "in_flight": "#1971c2",
    "queued": "#f08c00",
    "limit": "#868e96",
}


def chart(series: dict[str, list[list[float]]], names: tuple[str, ...], window: float) -> str:
    """An inline SVG of ``names``' series over the last ``window`` seconds (x: seconds ago)."""
    drawn = [(name, series[name]) for name in names if series.get(name)]
    top = max([point[1] for _, points in drawn for point in points] + [1.0])
    lines = []
    for name, points in drawn:
        coordinates = " ".join(
            f"{WIDTH * (1 + ago / window):.1f},{HEIGHT - HEIGHT * value / top:.1f}"
            for ago, value in points
        )
        lines.append(
            f'<polyline class="series series-{name}" fill="none" stroke="{_COLORS[name]}" '
            f'stroke-width="2" points="{coordinates}"/>'
        )
    legend = " ".join(
        f'<tspan fill="{_COLORS[name]}">{name.replace("_", " ")}</tspan>' for name in names
    )
    return (
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT + 18}" width="{WIDTH}" '
        f'height="{HEIGHT + 18}" role="img" aria-label="{" and ".join(names)} over time">'
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#f8f9fa"/>'
        + "".join(lines)
        + f'<text x="4" y="12" font-size="11">max {top:,.1f}</text>'
        f'<text x="4" y="{HEIGHT + 14}" font-size="11">{legend} (last {window:.0f} s)</text>'
        "</svg>"
    )


#: A concurrency limiter's refusals, by reason, as its card names them.
_REFUSAL_LABELS = (
    ("no_permit", "refused, no permit free"),
    ("queue_full", "refused, queue full"),
    ("shed", "shed for a more important caller"),
    ("max_keys", "refused, too many keys"),
    ("timed_out", "timed out in the queue"),
)


def _row(label: str, value: object) -> str:
    shown = "-" if value is None else f"{value:,}" if isinstance(value, int) else str(value)
    return f"<tr><th>{html.escape(label)}</th><td>{html.escape(shown)}</td></tr>"


def card(reading: dict[str, Any], series: dict[str, list[list[float]]], window: float) -> str:
    """One limiter's card: its figures, its chart, its top offenders."""
    kind = reading["kind"]
    title = html.escape(reading["name"])
    rows: list[str] = []
    body = ""
    if kind == "rate":
        rates = "; ".join(f"{limit}/{window_s}s" for limit, window_s in reading["rates"])
        rows += [
            _row("algorithm", f"{reading['algorithm']} {rates}"),
            _row("allowed", reading["allowed"]),
            _row("refused", reading["blocked"]),
            _row("keys tracked", reading["active_keys"]),
            _row("storage", reading["storage"]),
        ]
        if reading["remote"]:
            healthy = reading["storage_healthy"]
            fallback = reading["fallback"]
            if reading["fallback_active"]:
                fallback = f"{fallback}, deciding now"
            rows += [
                _row("storage answering", "yes" if healthy else "no: outage under way"),
                _row("storage errors", reading["storage_errors"]),
                _row("round trip, mean ms", reading["latency_ms"]),
                _row("fallback", fallback),
            ]
        body = chart(series, ("allowed", "blocked"), window) + _top(reading)
    elif kind == "concurrency":
        rows += [
            _row("in flight", reading["in_flight"]),
            _row("queued", reading["queued"]),
            _row("limit", reading["limit"]),
            _row("acquired", reading["allowed"]),
            *(_row(label, reading["refused"][reason]) for reason, label in _REFUSAL_LABELS),
            _row("missed the deadline", reading["deadline_missed"]),
        ]
        body = chart(series, ("in_flight", "queued", "limit"), window)
    else:
        rows.append(_row("remaining now", reading["remaining"]))
    return (
        f'<section class="card" data-limiter="{title}"><h2>{title}</h2>'
        f"<table>{''.join(rows)}</table>{body}</section>"
    )


def _top(reading: dict[str, Any]) -> str:
    if not reading["tracking"]:
        return '<p class="top off">top offenders: not tracked (track_top=0)</p>'
    if reading["keys_hidden_by"] == "metrics_keys":
        return '<p class="top off">top offenders: hidden (metrics_keys=&quot;none&quot;)</p>'
    if reading["keys_hidden_by"] == "top":
        return '<p class="top off">top offenders: not listed (top=0)</p>'
    items = "".join(
        f'<li><code class="key">{html.escape(str(key))}</code> <span>{refusals:,}</span></li>'
        for key, refusals in reading["top_blocked"]
    )
    return f'<h3>most refused</h3><ol class="top">{items or "<li>none</li>"}</ol>'


_SCRIPT = """
const cards = document.getElementById("cards");
async function refresh() {
  try {
    const reply = await fetch("api/state", {cache: "no-store", credentials: "same-origin"});
    if (reply.ok) {
      cards.innerHTML = (await reply.json()).html;
      document.body.dataset.refreshed = String(Date.now());
    }
  } catch (error) {}
}
setInterval(refresh, 2000);
refresh();
"""

_STYLE = """
body{font:14px system-ui,sans-serif;margin:1.5em;color:#212529}
.card{border:1px solid #dee2e6;border-radius:6px;padding:.8em 1em;margin:0 0 1em;max-width:600px}
h2{font-size:1.1em;margin:0 0 .5em} h3{font-size:1em;margin:.8em 0 .3em}
table{border-collapse:collapse;margin-bottom:.5em}
th{text-align:left;font-weight:500;padding-right:1.5em}
ol.top{margin:0;padding-left:1.5em} code.key{background:#f1f3f5;padding:0 .3em}
"""


def page(title: str, cards_html: str) -> str:
    """The whole page, its cards as of now."""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
        f'<body><h1>{html.escape(title)}</h1><div id="cards">{cards_html}</div>'
        f"<script>{_SCRIPT}</script></body></html>"
    )
