"""Band-localized compute against a tuned flow matching: FD against sampling GFLOPs per image, with
training GFLOPs per image and the measured seconds, side by side in one run on Fashion-MNIST 32x32.

Every row trains the quality benchmark's CPU-profile backbone under the same budget (steps, batch,
seed, data order), then samples with the same noise at several Euler NFE. FLOPs are counted with
torch.utils.flop_counter per stage and multiplied by the stages each sampler call and each training
k visits (kflow/models/flops.py). Finished trainings and cells are reused.

    python benchmarks/localized.py --out docs/results/localized_cpu_1500            # ~1.5 h, 2 cores
    python benchmarks/localized.py --speed --out docs/results/localized_speed_cpu   # wall-clock only, ~5 min
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from toolkit import PROFILES, TrainedRow, cell, dataset_overrides, report, row_config, score_images, setup

from kflow.metrics.evaluate import format_table
from kflow.models.flops import FlopTally, training_flops_per_image
from kflow.runs import load_run
from kflow.sampling import sample
from kflow.sampling.grids import parse_step_allocation

FM = "fm_logit"  # flow matching tuned as hard as before: logit-normal k, uniform steps are its best
ROWS = f"{FM},wavelet2_o50_win_logit_stage,wavelet2_stag_logit_stage,wavelet3_stag_logit_stage"
FM_NFE = "5,10,15,20,30,50"
KFLOW_NFE = "10,20,30,40"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", default=ROWS)
    ap.add_argument("--steps", type=int, default=PROFILES["cpu"]["steps"])
    ap.add_argument("--fm-steps", type=int, default=None, help="FM's steps when they differ (equal training FLOPs)")
    ap.add_argument("--n", type=int, default=2000, help="samples per cell")
    ap.add_argument("--fm-nfe", default=FM_NFE)
    ap.add_argument("--nfe", default=KFLOW_NFE, help="Euler NFE of the K-Flow rows")
    ap.add_argument(
        "--step-allocation",
        default=None,
        help="K-Flow rows: steps per band (length, equal, weights 2,1,1; default: the row's)",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dataset", default="fashion_mnist", help="fashion_mnist, or digits32 (sklearn's digits at 32x32)")
    ap.add_argument("--work", default="runs/quality")
    ap.add_argument("--classifier", default="classifiers/fashion_mnist.safetensors")
    ap.add_argument("--speed", action="store_true", help="only the wall-clock table (untrained weights time the same)")
    ap.add_argument("--rounds", type=int, default=3, help="--speed: interleaved rounds (the median is reported)")
    ap.add_argument("--per-round", type=int, default=10, help="--speed: training steps per row and round")
    ap.add_argument("--out", default=None)
    ap.add_argument("--figure", default=None, help="write the FD-against-GFLOPs frontier here (PNG)")
    ap.add_argument("--also", default=None, help="further results (.json, comma-separated) whose rows join the figure")
    args = ap.parse_args()
    rows = args.rows.split(",")
    if args.speed:
        return speed(rows, args)
    env = setup(args.classifier, args.dataset)
    noise = torch.randn(args.n, 1, 32, 32, generator=torch.Generator().manual_seed(args.seed))
    results = []
    for row in rows:
        steps = args.fm_steps if row.startswith("fm") and args.fm_steps else args.steps
        cfg = row_config(row, "cpu", steps, args.seed, args.work, extra=dataset_overrides(args.dataset))
        tr = TrainedRow(cfg, env.device)
        run = tr.run
        train_gflops = training_flops_per_image(run.model, run.path, cfg.train.k_density, cfg.train.stage_share) / 1e9
        nfes = args.fm_nfe if row.startswith("fm") else args.nfe
        own = cfg.sample.step_allocation
        alloc = args.step_allocation or alloc_name(own)
        alloc = "length" if row.startswith("fm") else alloc
        tag = "" if alloc == "length" or not args.step_allocation else f"-alloc{alloc.replace(',', '_')}"
        for nfe in [int(v) for v in nfes.split(",")]:

            def measure(nfe=nfe, row=row, alloc=alloc):
                t0, tally = time.time(), FlopTally(run.model, run.path)
                out = sample(
                    tally,
                    run.path,
                    args.n,
                    steps=nfe,
                    grid=cfg.sample.grid,
                    x_0=noise,
                    device=env.device,
                    step_allocation=parse_step_allocation(alloc),
                )
                return dict(
                    row=row,
                    step_allocation=alloc,
                    nfe=out.nfe,
                    sample_gflops=tally.flops / args.n / 1e9,
                    **score_images(env.clf, run.to_image(out.x), env.real, env.real_y),
                    sample_s=time.time() - t0,
                    train_gflops=train_gflops,
                    train_s=tr.train_s,
                    train_images_per_s=tr.images_per_s,
                    steps=steps,
                    n=args.n,
                )

            r = cell(Path(cfg.out_dir) / f"localized-euler-{nfe}{tag}-n{args.n}-seed{args.seed}.json", measure)
            r.setdefault("step_allocation", "length")  # cells written before the option
            results.append(r)
            print(json.dumps(r), flush=True)
    compare(results)
    table = format_table(
        results,
        [
            "row",
            "step_allocation",
            "nfe",
            "sample_gflops",
            "fd",
            "precision",
            "recall",
            "fm_fd_at_flops",
            "fd_vs_fm",
            "class_tv",
            "train_gflops",
        ],
    )
    head = (
        f"hardware: {env.hardware}; CPU profile: {args.steps} steps (FM {args.fm_steps or args.steps}) "
        f"x batch {PROFILES['cpu']['batch']}, "
        f"{args.n} samples per cell (noise seed {args.seed}); Euler on each row's grid; "
        f"classifier test accuracy {env.clf.info.test_accuracy:.4f}"
    )
    report(head, table, results, args.out)
    if args.figure:
        extra = []
        for also in args.also.split(",") if args.also else []:  # other budgets, labelled with their steps
            have = {(r["row"], r["steps"]) for r in results + extra}
            rows = json.loads(Path(also).read_text())["rows"]
            extra += [
                dict(r, row=f"{r['row']}, {r['steps']} steps") for r in rows if (r["row"], r["steps"]) not in have
            ]
        figure([dict(r, row=f"{r['row']}, {r['steps']} steps") for r in results] + extra, args.figure)


def figure(results: list[dict], out: str) -> None:
    """FD against sampling GFLOPs per image, one line per row (log-scaled cost)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for row in dict.fromkeys(r["row"] for r in results):
        pts = sorted((r["sample_gflops"], r["fd"], r["nfe"]) for r in results if r["row"] == row)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=row, lw=2 if row.startswith(FM + ",") else 1.2)
        for g, fd, nfe in pts:
            ax.annotate(str(nfe), (g, fd), textcoords="offset points", xytext=(3, 3), fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("sampling GFLOPs per image (labels: NFE)")
    ax.set_ylabel("FD (lower is better)")
    ax.set_title("Band-localized compute against tuned flow matching")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)


def alloc_name(alloc: str | list[float]) -> str:
    """sample.step_allocation as the tables write it: length, equal or 2,1,1."""
    return alloc if isinstance(alloc, str) else ",".join(f"{w:g}" for w in alloc)


def compare(results: list[dict]) -> None:
    """Each cell's FD over FM's at the same NFE (fd_vs_fm), and FM's FD at the same sampling GFLOPs
    (fm_fd_at_flops: linear in log-FLOPs between FM's cells; nan outside their range)."""
    import math

    fm = sorted((r["sample_gflops"], r["fd"], r["nfe"]) for r in results if r["row"] == FM)
    by_nfe = {nfe: fd for _, fd, nfe in fm}
    for r in results:
        r["fd_vs_fm"] = r["fd"] / by_nfe.get(r["nfe"], float("nan"))
        r["fm_fd_at_flops"] = float("nan")
        for (g0, f0, _), (g1, f1, _) in zip(fm, fm[1:]):
            if g0 <= r["sample_gflops"] <= g1:
                w = (math.log(r["sample_gflops"]) - math.log(g0)) / (math.log(g1) - math.log(g0))
                r["fm_fd_at_flops"] = f0 + w * (f1 - f0)


def speed(rows: list[str], args) -> None:
    """Seconds per real training step (the Trainer: data, path, forward, backward, AdamW, EMA) and per
    sampled batch, rows interleaved in rounds (medians). Sampling uses each row's trained weights when
    its run exists (untrained weights can drift into denormal floats, which time differently)."""
    import tempfile

    from kflow.training import Trainer

    torch.manual_seed(0)
    tmp = tempfile.mkdtemp(prefix="kflow-speed-")
    trainers, samplers = {}, {}
    for row in rows:
        steps = args.fm_steps if row.startswith("fm") and args.fm_steps else args.steps
        cfg = row_config(row, "cpu", steps, args.seed, args.work)
        finished = Path(cfg.out_dir) / "config.json"
        scratch = row_config(row, "cpu", 10**6, args.seed, tmp, extra=["train.log_every=1000000"])
        trainers[row] = Trainer(scratch)
        trainers[row].fit(until=3)  # warm-up: the first step at each resolution allocates
        samplers[row] = load_run(cfg.out_dir).model if finished.exists() else trainers[row].ema.eval()
    times = {row: {"train": [], "sample": []} for row in rows}
    allocs = {  # the row's own steps per stage, or --step-allocation's (FM's grid stays uniform)
        row: parse_step_allocation(args.step_allocation)
        if args.step_allocation and not row.startswith("fm")
        else tr.cfg.sample.step_allocation
        for row, tr in trainers.items()
    }
    x_0 = torch.randn(256, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    per_round = args.per_round
    for _ in range(args.rounds):
        for row, tr in trainers.items():
            t0 = time.perf_counter()
            tr.fit(until=tr.step + per_round)
            times[row]["train"].append((time.perf_counter() - t0) / per_round)
            t0 = time.perf_counter()
            sample(
                samplers[row],
                tr.path,
                len(x_0),
                steps=20,
                grid=tr.cfg.sample.grid,
                x_0=x_0,
                step_allocation=allocs[row],
            )
            times[row]["sample"].append(time.perf_counter() - t0)
    out = []
    for row in rows:
        s, t = statistics.median(times[row]["sample"]), statistics.median(times[row]["train"])
        out.append(
            dict(
                row=row,
                step_allocation=alloc_name(allocs[row]),
                sample_s_256_nfe20=s,
                train_s_per_step=t,
                trained_weights=samplers[row] is not trainers[row].ema,
            )
        )
    fm = next(r for r in out if r["row"] == FM)
    for r in out:
        r["sampling_speedup"] = fm["sample_s_256_nfe20"] / r["sample_s_256_nfe20"]
        r["training_speedup"] = fm["train_s_per_step"] / r["train_s_per_step"]
    table = format_table(
        out,
        [
            "row",
            "step_allocation",
            "sample_s_256_nfe20",
            "sampling_speedup",
            "train_s_per_step",
            "training_speedup",
            "trained_weights",
        ],
    )
    head = (
        f"{torch.get_num_threads()} CPU threads; median of {args.rounds} interleaved rounds; the real Trainer, "
        f"{per_round} steps of batch {PROFILES['cpu']['batch']} per round; sampling 256 images, Euler NFE 20"
    )
    report(head, table, out, args.out)


if __name__ == "__main__":
    main()
