"""K-Flow vs flow matching at equal compute on Fashion-MNIST 32x32, side by side in one run.

Every row trains the same backbone with the same batch, steps, learning rate, seed and data
order (the configs differ only in `transform` / `path`), then samples at several NFE with the
same noise and is scored in the features of the project's classifier against the test split.

    python benchmarks/quality.py --profile cpu      # about 2.5 hours on 2 cores; rerun to continue
    python benchmarks/quality.py --profile gpu      # bigger model, more steps
    python benchmarks/quality.py --rows fm,wavelet3 --steps 300 --n 1000   # a quick look
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import time
from pathlib import Path

import torch

from kflow.config import load_config
from kflow.metrics import FeatureClassifier, reference_features, score_features, train_classifier
from kflow.metrics.evaluate import format_table
from kflow.recipe import load_run
from kflow.sampling import sample
from kflow.training import train

ROOT = Path(__file__).resolve().parents[1]
PROFILES = {
    # small UNet; per row about 10 min of training and 3 min per 10 NFE of sampling 5000 images on 2
    # CPU cores. Trained runs and finished (row, NFE) cells are reused, so an interrupted run continues.
    "cpu": dict(
        steps=1500,
        batch=64,
        n=5000,
        nfe=[10, 20],
        dopri5=False,
        model=["model.unet.channels=16", "model.unet.channel_mult=[1,2,2]", "model.unet.num_res_blocks=1"],
        rows="fm,wavelet2,wavelet3,fourier2,pca2",
    ),
    "gpu": dict(
        steps=20000,
        batch=128,
        n=10000,
        nfe=[10, 20, 50],
        dopri5=True,
        model=[],
        rows="fm,fourier2,fourier3,wavelet2,wavelet3,pca2,pca3",
    ),
}
# extra rows: a name -> (config, overrides) for the investigation of what helps K-Flow
VARIANTS = {
    "wavelet3_smooth": ("wavelet3", ["path.bump=smoothstep"]),
    "wavelet3_energy": ("wavelet3", ["path.allocation=energy"]),
    "wavelet2_smooth": ("wavelet2", ["path.bump=smoothstep"]),
    "fourier2_smooth": ("fourier2", ["path.bump=smoothstep"]),
    "haar3": ("wavelet3", ["transform.wavelet=haar"]),
    # k (and so training samples and sampling steps) in proportion to band energy, with the loss
    # reweighted so the short bands' 1/dk-scaled targets do not swamp the gradient
    "wavelet3_energy_iw": ("wavelet3", ["path.allocation=energy", "train.band_loss_weights=interval"]),
    "wavelet2_energy_iw": ("wavelet2", ["path.allocation=energy", "train.band_loss_weights=interval"]),
    # between uniform and energy: sqrt of the db6 band energies of the training split (0.898, 0.059, 0.043)
    "wavelet3_sqrt_iw": ("wavelet3", ["path.allocation=[0.948,0.243,0.208]", "train.band_loss_weights=interval"]),
    # the network also sees which band is active (a one-hot next to the sinusoids of k)
    "wavelet3_band": ("wavelet3", ["model.k_embedding=band"]),
    "wavelet2_band": ("wavelet2", ["model.k_embedding=band"]),
    # band schedules: each band's k-window widened by the overlap (0 = hard K-Flow, 1 = FM), or
    # staggered starts with a shared end (LapFlow-like)
    "wavelet2_o25": ("wavelet2", ["path.overlap=0.25"]),
    "wavelet2_o50": ("wavelet2", ["path.overlap=0.5"]),
    "wavelet2_o75": ("wavelet2", ["path.overlap=0.75"]),
    "wavelet2_stag": ("wavelet2", ["path.windows=[[0.0,1.0],[0.5,1.0]]"]),
    # overlap 0.5 with per-band local times in the k-embedding, or with conditioning augmentation
    "wavelet2_o50_win": ("wavelet2", ["path.overlap=0.5", "model.k_embedding=window"]),
    "wavelet2_o50_aug": ("wavelet2", ["path.overlap=0.5", "train.cond_aug=0.1"]),
    # per-band normalisation of the data (each band's coefficients to unit RMS, undone on the samples)
    "wavelet2_norm": ("wavelet2", ["transform.band_scale=rms"]),
    "wavelet2_o50_win_norm": ("wavelet2", ["path.overlap=0.5", "model.k_embedding=window", "transform.band_scale=rms"]),
    # the schedule with FM's best knob: k drawn logit-normal over the whole path, as fm_logit
    "wavelet2_o50_win_logit": (
        "wavelet2",
        ["path.overlap=0.5", "model.k_embedding=window", "train.k_density=logit_normal"],
    ),
    # k drawn logit-normal inside each band's window, sampled with steps at the matching quantiles
    "wavelet2_o50_win_wlogit": (
        "wavelet2",
        [
            "path.overlap=0.5",
            "model.k_embedding=window",
            "train.k_density=window_logit_normal",
            "sample.grid=band_logit",
        ],
    ),
    # FM tuned with the same knob: k drawn logit-normal (more weight mid-path)
    "fm_logit": ("fm", ["train.k_density=logit_normal"]),
    "wavelet3_o50": ("wavelet3", ["path.overlap=0.5"]),
    "fourier2_o50": ("fourier2", ["path.overlap=0.5"]),
    "pca2_o50": ("pca2", ["path.overlap=0.5"]),
}


# A row without a suffix is the paper's path for its transform (hard band windows, the network sees k
# alone, k drawn uniformly), pinned here whatever the shipped configs default to; variants say what
# they change.
PAPER_PATH = ["path.overlap=0", "model.k_embedding=k", "train.k_density=uniform"]


def config_for(row: str, overrides: list[str]):
    base, extra = VARIANTS.get(row, (row, []))
    return load_config(ROOT / "configs" / f"fmnist_{base}.yaml", [*PAPER_PATH, *extra, *overrides])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", default="cpu", choices=list(PROFILES))
    ap.add_argument("--rows", default=None, help="comma-separated: fm, fourier2, wavelet3, pca2, ... or variants")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--n", type=int, default=None, help="samples per row and NFE")
    ap.add_argument("--nfe", default=None, help="comma-separated Euler step counts")
    ap.add_argument("--dopri5", choices=["profile", "yes", "no"], default="profile", help="also sample with dopri5")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", default="runs/quality", help="run folders (reused: finished trainings are skipped)")
    ap.add_argument("--classifier", default="classifiers/fashion_mnist.safetensors")
    ap.add_argument("--out", default=None, help="write markdown + JSON results here")
    ap.add_argument("--sample-batch", type=int, default=500, help="images per sampling batch")
    ap.add_argument("--set", nargs="*", default=[], help="config overrides for every row (key=value)")
    ap.add_argument("--train-only", action="store_true", help="train the rows, sample nothing (a speed probe)")
    args = ap.parse_args()
    prof = PROFILES[args.profile]
    rows = (args.rows or prof["rows"]).split(",")
    steps, n = args.steps or prof["steps"], args.n or prof["n"]
    nfes = [int(v) for v in args.nfe.split(",")] if args.nfe else prof["nfe"]
    device, hw, clf, real, _ = setup(args.classifier)
    print(f"classifier test accuracy {clf.info.test_accuracy:.4f}; reference: Fashion-MNIST test split ({len(real)})")

    results = []
    noise = torch.randn(n, 1, 32, 32, generator=torch.Generator().manual_seed(args.seed))  # same noise for every row
    for row in rows:
        over = [
            *prof["model"],
            f"train.steps={steps}",
            f"train.batch_size={prof['batch']}",
            f"train.seed={args.seed}",
            f"out_dir={args.work}/{args.profile}-{steps}-{row}",
            "train.sample_every=0",
            f"train.ckpt_every={steps}",
            *args.set,
        ]
        cfg = config_for(row, over)
        t0 = time.time()
        res = train(cfg, resume=True)
        train_s = time.time() - t0
        with open(Path(cfg.out_dir) / "log.csv") as f:
            ips = [float(r["images_per_s"]) for r in csv.DictReader(f)]
        images_per_s = sorted(ips)[len(ips) // 2] if ips else float("nan")
        if args.train_only:
            print(json.dumps(dict(row=row, steps=steps, train_s=train_s, train_images_per_s=images_per_s)), flush=True)
            continue
        run = load_run(res.out_dir, device=device)
        dopri5 = prof["dopri5"] if args.dopri5 == "profile" else args.dopri5 == "yes"
        settings = [("euler", k) for k in nfes] + ([("dopri5", 0)] if dopri5 else [])
        for solver, k in settings:
            done = Path(cfg.out_dir) / f"quality-{solver}-{k}-n{n}-seed{args.seed}.json"  # finished cells are reused
            if done.exists():
                r = json.loads(done.read_text())
            else:
                t1 = time.time()
                out = sample(
                    run.model,
                    run.path,
                    n,
                    solver=solver,
                    steps=max(k, 1),
                    grid=cfg.sample.grid,
                    x_0=noise,
                    device=device,
                    batch_size=args.sample_batch,
                )
                sc = score_features(clf.embed(run.to_image(out.x).clamp(-1, 1)), real)
                r = dict(
                    row=row,
                    transform=cfg.transform.name,
                    bands=run.path.num_bands,
                    bump=cfg.path.bump,
                    solver=solver,
                    nfe=out.nfe,
                    fd=sc.fd,
                    precision=sc.precision,
                    recall=sc.recall,
                    train_images_per_s=images_per_s,
                    n=n,
                    sample_s=time.time() - t1,
                    train_s=train_s,
                    steps=steps,
                )
                done.write_text(json.dumps(r))
            results.append(r)
            print(json.dumps(r), flush=True)
    if args.train_only:
        return

    table = compare(results)
    head = (
        f"hardware: {hw}; profile {args.profile}: {steps} steps x batch {prof['batch']}, {n} samples per row "
        f"(noise seed {args.seed}, training seed {args.seed}), classifier test accuracy {clf.info.test_accuracy:.4f}"
    )
    report(head, table, results, args.out)


def compare(results: list[dict]) -> str:
    """Each cell's FD as a ratio to plain FM, to the best FM row (plain or tuned) and to the best FM at
    twice the Euler NFE; returns the markdown table."""

    def cell(r):  # rows are compared at the same Euler NFE, or both adaptive (dopri5's NFE differs per row)
        return (r["solver"], r["nfe"] if r["solver"] == "euler" else None)

    fm = {cell(r): r["fd"] for r in results if r["row"] == "fm"}
    # the reference is the best FM row (plain or tuned) at the same solver and NFE
    best_fm: dict = {}
    for r in results:
        if r["row"] == "fm" or r["row"].startswith("fm_"):
            key = cell(r)
            best_fm[key] = min(best_fm.get(key, float("inf")), r["fd"])
    best_fm_nfe = {nfe: fd for (solver, nfe), fd in best_fm.items() if solver == "euler"}
    for r in results:
        r["fd_vs_fm"] = r["fd"] / fm[cell(r)] if cell(r) in fm else float("nan")
        r["fd_vs_best_fm"] = r["fd"] / best_fm[cell(r)] if cell(r) in best_fm else float("nan")
        twice = 2 * r["nfe"] if r["solver"] == "euler" else None  # the best FM at twice the NFE
        r["fd_vs_best_fm_2x_nfe"] = r["fd"] / best_fm_nfe[twice] if twice in best_fm_nfe else float("nan")
    return format_table(
        results,
        [
            "row",
            "solver",
            "nfe",
            "fd",
            "precision",
            "recall",
            "train_images_per_s",
            "fd_vs_fm",
            "fd_vs_best_fm",
            "fd_vs_best_fm_2x_nfe",
        ],
    )


def setup(classifier: str):
    """Device, a hardware line, the classifier (trained when missing) and the test split's features/labels."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    os.environ.setdefault("KFLOW_PROGRESS", "0")
    hw = (
        torch.cuda.get_device_name()
        if device.type == "cuda"
        else f"{platform.machine()} CPU, {torch.get_num_threads()} threads"
    )
    clf_path = Path(classifier)
    if not clf_path.exists():
        train_classifier("fashion_mnist", clf_path, epochs=3)
    clf = FeatureClassifier.load(clf_path)
    real, real_y = reference_features(clf, clf_path, "fashion_mnist", "test")
    return device, hw, clf, real, real_y


def report(head: str, table: str, rows: list[dict], out: str | None) -> None:
    """Print the header and table; with `out`, also write them as markdown + JSON (out.md, out.json)."""
    print("\n" + head + "\n\n" + table)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).with_suffix(".md").write_text(head + "\n\n" + table + "\n")
        Path(out).with_suffix(".json").write_text(json.dumps({"header": head, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
