"""Bits per dimension of the Fashion-MNIST test images under trained rows, side by side, with what
each band costs (kflow/sampling/likelihood.py): the ODE from each image back to noise with dopri5,
the trace by Hutchinson's estimator (one Rademacher probe per image, fixed along the path), 8-bit
images dequantized uniformly. Rows must be trained first (benchmarks/localized.py trains them), or
pass --train.

    python benchmarks/likelihood.py --rows fm_logit,wavelet3_stag_logit_stage_strat_own --n 1000 \
        --out docs/results/likelihood_cpu_1500
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch
from toolkit import PROFILES, TrainedRow, cell, report, row_config

from kflow.data import load_dataset
from kflow.metrics.evaluate import format_table
from kflow.runs import load_run
from kflow.sampling.likelihood import bits_by_band


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", required=True)
    ap.add_argument("--steps", type=int, default=PROFILES["cpu"]["steps"])
    ap.add_argument("--n", type=int, default=1000, help="test images")
    ap.add_argument("--rtol", type=float, default=1e-5)
    ap.add_argument("--probes", type=int, default=1)
    ap.add_argument("--work", default="runs/quality")
    ap.add_argument("--out", default=None)
    ap.add_argument("--figure", default=None)
    ap.add_argument("--device", default="cpu", help="cpu, cuda, ... (the ODE and the model)")
    ap.add_argument("--train", action="store_true", help="train a row that is not trained yet (else refused)")
    args = ap.parse_args()
    x = load_dataset("fashion_mnist", "test", image_size=32, limit=args.n).x
    results = []
    for row in args.rows.split(","):
        cfg = row_config(row, "cpu", args.steps, 0, args.work)
        if args.train:
            TrainedRow(cfg, args.device)  # trains it, or finds it finished
        elif not (Path(cfg.out_dir) / "config.json").exists():
            raise SystemExit(f"{cfg.out_dir} is not trained; train it first (benchmarks/localized.py --rows {row})")

        def measure(cfg=cfg, row=row):
            run = load_run(cfg.out_dir, device=args.device)
            out = bits_by_band(
                run.model,
                run.path,
                x,
                scale=run.scale,
                device=args.device,
                divergence="hutchinson",
                probes=args.probes,
                rtol=args.rtol,
                atol=args.rtol,
                progress=lambda done, total: print(f"{row}: {done}/{total}", flush=True),
            )
            r = dict(
                row=row,
                bits_per_dim=float(out.total.mean()),
                se=float(out.total.std() / math.sqrt(len(out.total))),
                s_per_image=out.seconds / len(out.total),
                nfe=out.nfe,
                n=len(out.total),
                steps=args.steps,
            )
            for b in range(out.band.shape[1]):
                r[f"band{b}_bits"] = float(out.band[:, b].mean())
                r[f"band{b}_share"] = float(out.share[:, b].mean())
            return r

        r = cell(Path(cfg.out_dir) / f"likelihood-n{args.n}-rtol{args.rtol}-p{args.probes}.json", measure)
        results.append(r)
        print(json.dumps(r), flush=True)
    cols = ["row", "bits_per_dim", "se"]
    cols += sorted({k for r in results for k in r if k.startswith("band")})
    cols += ["s_per_image", "nfe"]
    head = (
        f"Fashion-MNIST test, first {args.n} images; {args.steps} training steps (CPU profile); dopri5 rtol=atol="
        f"{args.rtol}; Hutchinson, {args.probes} Rademacher probe(s); uniform dequantization; the null class; "
        + (torch.cuda.get_device_name() if args.device.startswith("cuda") else f"{torch.get_num_threads()} CPU threads")
    )
    report(head, format_table(results, [c for c in cols if any(c in r for r in results)]), results, args.out)
    if args.figure:
        figure(results, args.figure)


def figure(results: list[dict], out: str) -> None:
    """Each row's share of the total bits per band (stacked), coarse band at the bottom."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    per_row = [[r[k] for k in sorted(k for k in r if k.endswith("_share"))] or [r["bits_per_dim"]] for r in results]
    most = max(len(shares) for shares in per_row)  # one colour per band index, the same in every row
    for i, shares in enumerate(per_row):
        bottom = 0.0
        for b, v in enumerate(shares):
            ax.bar(i, v, bottom=bottom, color=plt.cm.viridis(b / max(most - 1, 1)), label=f"band {b}")
            bottom += v
    ax.set_xticks(range(len(results)), [r["row"] for r in results], rotation=15, fontsize=7)
    ax.set_ylabel("bits per dimension (share by band)")
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(dict(zip(labels, handles)).values(), dict(zip(labels, handles)).keys(), fontsize=7)
    fig.tight_layout()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)


if __name__ == "__main__":
    main()
