"""Regenerate the figures of the steering controls (docs/steering.md) from the CPU-profile runs.

    .venv/bin/python benchmarks/steering_figures.py        # trains what is missing (~10 min a run)

Runs (benchmarks/quality.py CPU profile, trained here when missing, reused otherwise):
cpu-1500-fm and cpu-1500-wavelet3 (unconditional), cpu-1500-wavelet3-cond (labels, dropout 0.1,
as in benchmarks/conditional.py) and cpu-1500-wavelet3-rev (path.order=high_to_low).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from noise_splitting import band_correlation
from toolkit import PROFILES, ROOT, row_config

from kflow.data import load_dataset
from kflow.metrics.psnr import psnr
from kflow.runs import load_run
from kflow.sampling import sample
from kflow.steering import baseline, class_conditional, edit_bands, make_degradation, restore, split_noise
from kflow.training import train
from kflow.viz.images import save_image_grid

RUNS = {
    "fm": ("fm", []),
    "wavelet2_o50_win": ("wavelet2_o50_win", []),  # the adopted band schedule
    "wavelet3": ("wavelet3", []),
    "wavelet3-cond": ("wavelet3", ["data.labels=true", "train.label_dropout=0.1"]),
    "wavelet3-rev": ("wavelet3", ["path.order=high_to_low"]),
}


def run(name: str, work: str, steps: int):
    row, extra = RUNS[name]
    cfg = row_config(row, "cpu", steps, 0, work, tag=name.removeprefix(row), extra=extra)
    return load_run(train(cfg, resume=True).out_dir)


def restoration_figure(kf, fm, test, out: Path, facts: dict) -> None:
    """x4 box super-resolution and sigma-2 blur: K-Flow vs FM (the same method) vs classical."""
    grids = []
    for task, kw in [("sr_box", dict(factor=4)), ("blur", dict(sigma=2.0))]:
        A = make_degradation(task, (1, 32, 32), **kw)
        y = A(test)
        shown = torch.nn.functional.interpolate(y, size=(32, 32), mode="nearest") if y.shape[-1] != 32 else y
        res = {
            "classical": baseline(y, A),
            "FM": restore(fm.model, fm.path, y, A, steps=20).x,
            "K-Flow": restore(kf.model, kf.path, y, A, steps=20).x,
        }
        grids += [test, shown, *res.values()]
        facts[f"restore_psnr_db_{task}_{next(iter(kw.values()))}"] = {
            k: psnr(v.clamp(-1, 1), test).mean().item() for k, v in res.items()
        }
    save_image_grid(torch.cat(grids), out / "restoration.png", nrow=len(grids))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default="runs/quality")
    ap.add_argument("--steps", type=int, default=PROFILES["cpu"]["steps"])
    ap.add_argument("--out", default=str(ROOT / "docs" / "images"))
    ap.add_argument("--only", default=None, help="restoration: redraw only restoration.png")
    ap.add_argument("--kflow", default="wavelet3", help="the K-Flow run of the restoration figure")
    args = ap.parse_args()
    out = Path(args.out)
    facts_file = out / "_json" / "steering.json"
    facts = json.loads(facts_file.read_text()) if facts_file.exists() else {}  # figures not redrawn keep theirs
    n, nfe = 8, 50
    if args.only == "restoration":
        test = load_dataset("fashion_mnist", "test", None, 32).x[:n]
        restoration_figure(run(args.kflow, args.work, args.steps), run("fm", args.work, args.steps), test, out, facts)
        facts["restoration_kflow_run"] = args.kflow
        facts_file.write_text(json.dumps(facts, indent=2))
        print(json.dumps({k: v for k, v in facts.items() if k.startswith("restor")}, indent=2))
        return

    # noise splitting: each row shares the noise of some bands and draws the rest per sample
    kf, rev = run("wavelet3", args.work, args.steps), run("wavelet3-rev", args.work, args.steps)
    rows, corr = [], {}
    for name, r, fix in [
        ("low_to_high, fixed bands 1-2 (fine)", kf, [1, 2]),
        ("low_to_high, fixed band 0 (coarse)", kf, [0]),
        ("high_to_low, fixed band 0 (coarse)", rev, [0]),
        ("high_to_low, fixed bands 1-2 (fine)", rev, [1, 2]),
    ]:
        x = sample(r.model, r.path, n, steps=nfe, x_0=split_noise(r.path.transform, n, fix_bands=fix, seed=3)).x
        rows.append(x)
        corr[name] = [round(c, 3) for c in band_correlation(r.path.transform, x)]
    save_image_grid(torch.cat(rows), out / "noise_splitting.png", nrow=len(rows))
    facts["noise_splitting_rows"] = list(corr)
    facts["noise_splitting_band_correlation"] = corr

    # band editing: recover the noise of test images, keep band 0 of it, redraw bands 1-2
    test = load_dataset("fashion_mnist", "test", None, 32).x[:n]
    ed = edit_bands(kf.model, kf.path, test, keep_bands=[0], seed=5, steps=nfe)
    save_image_grid(torch.cat([test, ed.reconstruction, ed.x]), out / "band_editing.png", nrow=3)
    facts["editing_reconstruction_psnr_db"] = psnr(ed.reconstruction, test).mean().item()

    restoration_figure(kf, run("fm", args.work, args.steps), test, out, facts)
    facts["restoration_kflow_run"] = "wavelet3"

    # class conditioning: one sample per class, full class / dropped after k = 0.3 / guidance 2
    cond = run("wavelet3-cond", args.work, args.steps)
    y = torch.arange(10)
    x_0 = torch.randn(10, 1, 32, 32, generator=torch.Generator().manual_seed(11))
    rows = [
        sample(
            cond.model,
            cond.path,
            10,
            steps=nfe,
            x_0=x_0,
            y=y,
            velocity_for=class_conditional(cond.model, scale=s, keep_until=keep),
        ).x
        for s, keep in [(1.0, 1.0), (1.0, 0.3), (2.0, 1.0)]
    ]
    save_image_grid(torch.cat(rows), out / "class_conditioning.png", nrow=3)
    (out / "_json").mkdir(parents=True, exist_ok=True)
    (out / "_json" / "steering.json").write_text(json.dumps(facts, indent=2))
    print(json.dumps(facts, indent=2))


if __name__ == "__main__":
    main()
