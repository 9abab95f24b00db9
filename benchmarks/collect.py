"""One table from the finished cells of benchmarks/quality.py runs (nothing is trained or sampled):
FD, precision, recall per row and NFE, with the FD ratio to a reference row at the same NFE and to
the reference at twice the NFE.

    python benchmarks/collect.py --rows fm,wavelet2,wavelet2_o25,wavelet2_o50 --n 2000 --out docs/results/schedules_cpu
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", required=True, help="comma-separated rows; the first is the reference")
    ap.add_argument("--work", default="runs/quality/cpu-1500-", help="run folder prefix")
    ap.add_argument("--n", type=int, default=2000, help="samples per cell")
    ap.add_argument("--out", default=None, help="write out.md and out.json")
    args = ap.parse_args()
    rows = args.rows.split(",")
    cells = []
    for row in rows:
        for f in sorted(Path(args.work + row).glob(f"quality-*-n{args.n}-seed0.json")):
            cells.append(json.loads(f.read_text()))
    ref = {(c["solver"], c["nfe"]): c["fd"] for c in cells if c["row"] == rows[0]}
    ref_euler = {c["nfe"]: c["fd"] for c in cells if c["row"] == rows[0] and c["solver"] == "euler"}
    cells.sort(key=lambda c: (rows.index(c["row"]), c["solver"] != "euler", c["nfe"]))
    lines = [
        f"| row | solver | NFE | FD | precision | recall | FD / {rows[0]} | FD / {rows[0]} at 2x NFE |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in cells:
        r1 = c["fd"] / ref[(c["solver"], c["nfe"])] if (c["solver"], c["nfe"]) in ref else float("nan")
        r2 = c["fd"] / ref_euler[2 * c["nfe"]] if 2 * c["nfe"] in ref_euler else float("nan")
        c.update(fd_vs_ref=r1, fd_vs_ref_2x_nfe=r2)
        lines.append(
            f"| {c['row']} | {c['solver']} | {c['nfe']} | {c['fd']:.2f} | {c['precision']:.3f} | {c['recall']:.3f} "
            f"| {r1:.3f} | {r2:.3f} |"
        )
    print("\n".join(lines))
    if args.out:
        Path(args.out + ".md").write_text("\n".join(lines) + "\n")
        Path(args.out + ".json").write_text(json.dumps(cells, indent=2) + "\n")


if __name__ == "__main__":
    main()
