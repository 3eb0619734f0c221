"""The contenders of one ``run.py --json`` run side by side, as a chart.

    .venv-bench/bin/python bench/chart.py bench/RESULTS-run1.json docs/_static/bench.png

Accepted requests only (refusals and the table-size contenders are left to
the table), grouped by database: the median per request with its 25th-75th
percentile, and the SQL statements per request from the run's counting pass.
matplotlib is needed in the bench venv only; the extension does not use it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

GROUPS = (("", "no database"), ("sqlite", "SQLite"), ("postgres", "PostgreSQL"))


def wanted(row: dict[str, Any]) -> bool:
    name = row["name"]
    return row["status"] == 200 and not name.endswith(" tokens") and "last-used=0" not in name


def colour(name: str) -> str:
    if name.startswith("ext "):
        return "#2a7ab9"
    if name.startswith(("host-", "floor", "bare")):
        return "#9aa5b1"
    return "#e0892b"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("figures", help="a file written by run.py --json")
    parser.add_argument("output", help="the image to write (.png or .svg)")
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = json.loads(Path(args.figures).read_text())
    rows = [row for row in data["contenders"] if wanted(row)]
    panels = [(label, [r for r in rows if r["group"] == group]) for group, label in GROUPS]
    panels = [(label, members) for label, members in panels if members]
    heights = [max(1, len(members)) for _, members in panels]
    figure, axes = plt.subplots(len(panels), 1, figsize=(10, 0.34 * sum(heights) + 1.6),
                                gridspec_kw={"height_ratios": heights}, squeeze=False)
    for axis, (label, members) in zip(axes[:, 0], panels, strict=True):
        members = sorted(members, key=lambda r: r["median_us"])
        names = [r["name"] for r in members]
        medians = [r["median_us"] for r in members]
        spread = [[r["median_us"] - r["p25_us"] for r in members], [r["p75_us"] - r["median_us"] for r in members]]
        positions = range(len(members))
        axis.barh(positions, medians, xerr=spread, color=[colour(n) for n in names], height=0.7,
                  error_kw={"elinewidth": 0.8, "capsize": 2, "ecolor": "#444444"})
        axis.set_yticks(list(positions), names, fontsize=8)
        axis.invert_yaxis()
        axis.set_title(label, fontsize=10, loc="left")
        axis.set_xlabel("µs per request (median, 25th-75th percentile)", fontsize=8)
        axis.tick_params(axis="x", labelsize=8)
        right = max(r["p75_us"] for r in members)
        for position, row in zip(positions, members, strict=True):
            statements = row.get("statements")
            note = f"{row['x_bare']:.1f}x bare"
            if statements:
                note += f", {statements:g} SQL"
                if row.get("transactions"):
                    note += f" + {row['transactions']:g} tx"
            axis.text(row["p75_us"] + right * 0.01, position, note, va="center", fontsize=7, color="#333333")
        axis.set_xlim(0, right * 1.32)
        axis.grid(axis="x", color="#dddddd", linewidth=0.6)
        axis.set_axisbelow(True)
    machine = next((line for line in data.get("header", []) if line.startswith("machine:")), "")
    figure.suptitle("A protected GET through WSGI, per contender (blue: flask-apitokens)", fontsize=11)
    figure.text(0.01, 0.003, f"bench/run.py; {machine}", fontsize=7, color="#555555")
    figure.tight_layout(rect=(0, 0.015, 1, 0.98))
    figure.savefig(args.output, dpi=110)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
