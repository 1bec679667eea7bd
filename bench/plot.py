#!/usr/bin/env python3
"""bench/plot.py CSV SVG [SUBTITLE]: make bench's plot, written by hand (no
matplotlib): throughput (ok/s) and p99 latency against concurrency, one line per
kind and shape of the closed-loop rows (seed buy_item and HTTP checkout, hot
item and spread), on a log2 axis of clients. The fixed-rate and growth rows
(hot item, 32 clients) are single marks; the latency-bound row (another
provider latency, 256 clients) is in the table only.
"""
import csv
import math
import sys
from xml.sax.saxutils import escape

W, H = 1000, 430
PANEL_W, PANEL_H = 380, 280
TOP, LEFT = 70, 80
GAP = 110
SERIES = [  # (kind, shape, label, colour, dashed)
    ("seed", "hot", "seed, hot item", "#1f77b4", False),
    ("seed", "spread", "seed, spread", "#1f77b4", True),
    ("http", "hot", "HTTP, hot item", "#d62728", False),
    ("http", "spread", "HTTP, spread", "#d62728", True),
]
MARKS = [  # (kind, label, colour): single points, drawn as squares
    ("rate", "fixed rate", "#2ca02c"),
    ("growth", "big database", "#9467bd"),
]


def log_ticks(lo, hi):
    """1-2-5 ticks covering [lo, hi] (lo > 0), and the axis ends."""
    e0 = math.floor(math.log10(lo))
    e1 = math.ceil(math.log10(hi))
    ticks = [m * 10 ** e for e in range(e0, e1 + 1) for m in (1, 2, 5)]
    bottom = max(t for t in ticks if t <= lo)
    top = min(t for t in ticks if t >= hi)
    return [t for t in ticks if bottom <= t <= top], bottom, top


def fmt(v):
    return f"{v:g}" if v < 10000 else f"{v / 1000:g}k"


def panel(out, x0, title, unit, points, marks, xs):
    """points: {series index: [(clients, value)]}; marks: {mark index: (clients, value)}"""
    vals = [v for pts in points.values() for _, v in pts] + [v for _, v in marks.values()]
    vals = [v for v in vals if v > 0] or [1.0]
    ticks, ybot, ytop = log_ticks(min(vals), max(vals))
    if ytop == ybot:
        ytop = ybot * 10
    lspan = math.log10(ytop) - math.log10(ybot)
    lo_x, hi_x = math.log2(min(xs)), math.log2(max(xs))
    span = hi_x - lo_x or 1.0

    def px(c):
        if hi_x == lo_x:
            return x0 + PANEL_W / 2
        return x0 + (math.log2(c) - lo_x) / span * PANEL_W

    def py(v):
        v = min(max(v, ybot), ytop)
        return TOP + PANEL_H - (math.log10(v) - math.log10(ybot)) / lspan * PANEL_H

    out.append(f'<text x="{x0 + PANEL_W / 2}" y="{TOP - 12}" text-anchor="middle" '
               f'font-weight="bold">{escape(title)} (log scale)</text>')
    out.append(f'<rect x="{x0}" y="{TOP}" width="{PANEL_W}" height="{PANEL_H}" '
               'fill="none" stroke="#888"/>')
    for t in ticks:
        y = py(t)
        out.append(f'<line x1="{x0}" y1="{y:.1f}" x2="{x0 + PANEL_W}" y2="{y:.1f}" '
                   'stroke="#e5e5e5"/>')
        out.append(f'<text x="{x0 - 6}" y="{y + 4:.1f}" text-anchor="end">{fmt(t)}</text>')
    for c in xs:
        x = px(c)
        out.append(f'<line x1="{x:.1f}" y1="{TOP + PANEL_H}" x2="{x:.1f}" '
                   f'y2="{TOP + PANEL_H + 5}" stroke="#888"/>')
        out.append(f'<text x="{x:.1f}" y="{TOP + PANEL_H + 20}" '
                   f'text-anchor="middle">{c}</text>')
    out.append(f'<text x="{x0 + PANEL_W / 2}" y="{TOP + PANEL_H + 40}" '
               'text-anchor="middle">clients</text>')
    out.append(f'<text x="{x0 - 55}" y="{TOP + PANEL_H / 2}" text-anchor="middle" '
               f'transform="rotate(-90 {x0 - 55} {TOP + PANEL_H / 2})">{escape(unit)}</text>')
    for i, pts in points.items():
        _, _, _, colour, dashed = SERIES[i]
        pts = sorted(pts)
        dash = ' stroke-dasharray="6 4"' if dashed else ""
        if len(pts) > 1:
            path = " ".join(f"{px(c):.1f},{py(v):.1f}" for c, v in pts)
            out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" '
                       f'stroke-width="2"{dash}/>')
        for c, v in pts:
            fill = "white" if dashed else colour
            out.append(f'<circle cx="{px(c):.1f}" cy="{py(v):.1f}" r="4" fill="{fill}" '
                       f'stroke="{colour}" stroke-width="2"><title>{escape(SERIES[i][2])}, '
                       f'{c} clients: {v:g}</title></circle>')
    for i, (c, v) in marks.items():
        _, label, colour = MARKS[i]
        out.append(f'<rect x="{px(c) - 5:.1f}" y="{py(v) - 5:.1f}" width="10" height="10" '
                   f'fill="{colour}"><title>{escape(label)}, {c} clients: {v:g}</title></rect>')


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: plot.py CSV SVG [SUBTITLE]")
    with open(sys.argv[1], newline="") as f:
        rows = list(csv.DictReader(f))
    subtitle = sys.argv[3] if len(sys.argv) > 3 else ""
    tput, p99, mtput, mp99 = {}, {}, {}, {}
    xs = set()
    for r in rows:
        for i, (kind, _, _) in enumerate(MARKS):
            if r["kind"] == kind:
                c = int(r["clients"])
                xs.add(c)
                mtput[i] = (c, float(r["ok_per_s"]))
                mp99[i] = (c, float(r["p99_ms"]))
        shape = "hot" if r["items"] == "hot" else "spread"
        for i, (kind, sh, _, _, _) in enumerate(SERIES):
            if r["kind"] == kind and sh == shape:
                c = int(r["clients"])
                xs.add(c)
                tput.setdefault(i, []).append((c, float(r["ok_per_s"])))
                p99.setdefault(i, []).append((c, float(r["p99_ms"])))
    if not xs:
        xs = {1}
    xs = sorted(xs)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
           f'viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{W / 2}" y="22" text-anchor="middle" font-size="15" '
           'font-weight="bold">make bench: seed buy_item vs HTTP checkout</text>',
           f'<text x="{W / 2}" y="40" text-anchor="middle" fill="#555">{escape(subtitle)}</text>']
    panel(out, LEFT, "throughput", "ok/s", tput, mtput, xs)
    panel(out, LEFT + PANEL_W + GAP, "p99 latency", "ms", p99, mp99, xs)
    # Legend, under the panels; about 7 px a character.
    lx, ly = LEFT, H - 22
    for i, (_, _, label, colour, dashed) in enumerate(SERIES):
        if i not in tput:
            continue
        dash = ' stroke-dasharray="6 4"' if dashed else ""
        out.append(f'<line x1="{lx}" y1="{ly}" x2="{lx + 26}" y2="{ly}" stroke="{colour}" '
                   f'stroke-width="2"{dash}/>')
        out.append(f'<text x="{lx + 32}" y="{ly + 4}">{escape(label)}</text>')
        lx += 52 + 7 * len(label)
    for i, (_, label, colour) in enumerate(MARKS):
        if i not in mtput:
            continue
        out.append(f'<rect x="{lx + 8}" y="{ly - 5}" width="10" height="10" fill="{colour}"/>')
        out.append(f'<text x="{lx + 24}" y="{ly + 4}">{escape(label)}</text>')
        lx += 44 + 7 * len(label)
    out.append("</svg>")
    with open(sys.argv[2], "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
