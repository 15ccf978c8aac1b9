#!/usr/bin/env python3
"""Draw the per-figure ratios pocketserver/Synapse from hsbench JSON results as a PNG (with Pillow).

    .venv/bin/python bench/plot.py SYNAPSE.json[,SYNAPSE2.json...] POCKET.json[,...] docs/performance-ratios.png

Several comma-separated runs per side are reduced to per-figure medians, as hsbench --compare does.
"""
from __future__ import annotations

import json
import math
import statistics
import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

# (label, key in hsbench's "figures", True when lower is better)
FIGURES = [
    ("fsync+fdatasync per msg", "trace_fsync_total_per_msg", True),
    ("bytes written per msg", "send_write_bytes_per_msg", True),
    ("send throughput", "send_rate", False),
    ("send latency p99", "send_p99_ms", True),
    ("delivery p50", "e2e_p50_ms", True),
    ("initial /sync p50", "initial_sync_p50_ms", True),
    ("incremental /sync, 1 new", "incr_sync_new_p50_ms", True),
    ("idle RSS", "rss_idle_end_mb", True),
    ("startup", "startup_s", True),
    ("registration rate", "register_rate", False),
]


def figures(paths: str) -> dict[str, float]:
    runs = [json.loads(Path(p).read_text()).get("figures", {}) for p in paths.split(",")]
    keys = set().union(*runs)
    return {k: statistics.median([r[k] for r in runs if isinstance(r.get(k), (int, float))])
            for k in keys if any(isinstance(r.get(k), (int, float)) for r in runs)}


def main() -> None:
    synapse, pocket, out = figures(sys.argv[1]), figures(sys.argv[2]), Path(sys.argv[3])
    rows = [(label, pocket[key] / synapse[key], lower) for label, key, lower in FIGURES
            if key in synapse and key in pocket and synapse[key]]
    width, row_h, left = 900, 44, 260
    img = Image.new("RGB", (width, 90 + row_h * len(rows)), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    draw.text((20, 15), "pocketserver / Synapse, same machine, same run (log scale; green = pocketserver better)",
              fill="black", font=font)
    axis_lo, axis_hi = -3.0, 2.0                          # 0.001x .. 100x
    scale = (width - left - 40) / (axis_hi - axis_lo)
    x1 = left + (0 - axis_lo) * scale
    for tick in range(int(axis_lo), int(axis_hi) + 1):
        x = left + (tick - axis_lo) * scale
        draw.line([(x, 45), (x, 60 + row_h * len(rows))], fill=(220, 220, 220))
        draw.text((x - 12, 45), f"{10.0 ** tick:g}x", fill="gray", font=font)
    for i, (label, ratio, lower) in enumerate(rows):
        y = 70 + i * row_h
        value = math.log10(max(ratio, 10 ** axis_lo))
        better = ratio < 1 if lower else ratio > 1
        x2 = left + (value - axis_lo) * scale
        draw.rectangle([min(x1, x2), y, max(x1, x2), y + row_h - 14], fill=(60, 170, 90) if better else (210, 80, 70))
        draw.text((20, y + 8), f"{label} ({'lower' if lower else 'higher'} is better)", fill="black", font=font)
        draw.text((max(x1, x2) + 6, y + 8), f"{ratio:.3g}x", fill="black", font=font)
    draw.line([(x1, 60), (x1, 60 + row_h * len(rows))], fill="black")
    out.parent.mkdir(parents=True, exist_ok=True)
    img.save(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
