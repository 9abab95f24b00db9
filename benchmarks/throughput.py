"""Training and sampling throughput, FM vs each K-Flow transform, side by side in one run.

The real Trainer for every row, interleaved rounds (drift of the machine hits every row alike),
median images/s. Backbones: the Fashion-MNIST UNet on its configs (1 x 32 x 32), or a DiT size on
(4, 32, 32) latents (random latents: the content does not change the cost). On CUDA the table adds
model FLOPs utilisation: FLOPs of one training forward + backward counted with
torch.utils.flop_counter, times images/s, over the device's dense bf16 peak.

    python benchmarks/throughput.py                                   # UNet, CPU or GPU
    python benchmarks/throughput.py --backbone dit-B --batch 256 --compile   # on a GPU
    python benchmarks/throughput.py --sampler-only                    # sampler overhead only
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np
import torch

from kflow.config import load_config
from kflow.sampling import sample
from kflow.training import Trainer

ROOT = Path(__file__).resolve().parents[1]
UNET_ROWS = ["fm", "fourier2", "fourier3", "wavelet2", "wavelet3", "pca2", "pca3"]
DIT_ROWS = ["fm", "fourier3", "wavelet3", "pca2"]
# band-localized rows: the 3-band db6 config with staggered starts run at stage resolution, stage
# counts fixed per step, and a backbone per stage (`_own`)
STAGED = [
    "path.windows=[[0.0,1.0],[0.3333333333333333,1.0],[0.6666666666666666,1.0]]",
    "path.overlap=0",
    "model.k_embedding=window",
    "train.k_density=logit_normal",
    "model.resolution=stage",
    "train.stage_batches=stratified",
]
VARIANTS = {
    "wavelet3_stage": ("wavelet3", STAGED),
    "wavelet3_stage_own": ("wavelet3", [*STAGED, "model.stage_weights=own"]),
    # the recommended row's sampling and optimizer (its wide coarse UNet has no DiT counterpart)
    "wavelet3_staged": (
        "wavelet3",
        [*STAGED, "model.stage_weights=own", "train.adamw=fused", "sample.step_allocation=[2,1,1]"],
    ),
}
# dense bf16 tensor-core peaks (FLOP/s) from the vendors' data sheets, matched on the device name
PEAKS = {"H200": 989.4e12, "H100 PCIe": 756e12, "H100": 989.4e12, "A100": 312e12, "L40S": 362e12, "A10G": 70e12}


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def peak_flops(dev, override_tflops):
    if override_tflops:
        return override_tflops * 1e12
    if dev.type != "cuda":
        return None
    name = torch.cuda.get_device_name()
    return next((v for k, v in PEAKS.items() if k in name), None)


def train_flops_per_image(tr: Trainer, batch: int) -> float:
    """FLOPs of one forward + backward of the network on a batch, per image (counted, not estimated)."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.randn(batch, *tr.transform.shape, device=tr.device)
    k = torch.rand(batch, device=tr.device)
    with FlopCounterMode(display=False) as fc, torch.autocast(tr.device.type, torch.bfloat16, enabled=tr.amp):
        tr.model(x, k).float().pow(2).mean().backward()
    tr.model.zero_grad(set_to_none=True)
    return fc.get_total_flops() / batch


def counted_flops(tr: Trainer, dev) -> str:
    """Expected training GFLOPs per image (forward + backward over the stages the k-density visits)
    and sampling GFLOPs per image at 50 Euler steps, counted per stage (kflow/models/flops.py)."""
    from kflow.models.flops import FlopTally, training_flops_per_image

    model = tr.ema.eval()
    train = training_flops_per_image(tr.model, tr.path, tr.cfg.train.k_density, tr.cfg.train.stage_share) / 1e9
    tally = FlopTally(model, tr.path)
    sample(tally, tr.path, 2, steps=50, device=dev, step_allocation=tr.cfg.sample.step_allocation)
    return f"{train:.3f} | {tally.flops / 2 / 1e9:.3f}"


def make_trainers(args, tmp) -> dict:
    overrides = [
        f"train.batch_size={args.batch}",
        f"train.device={args.device}",
        "train.ckpt_every=1000000",
        "train.log_every=1000000",
        "train.steps=1000000",
        f"train.compile={str(args.compile).lower()}",
    ]
    if args.backbone == "unet":
        rows = args.rows.split(",") if args.rows else UNET_ROWS
        extra = []
    else:  # DiT on (4, 32, 32) latents (random values in the images' range: the content does not change the cost)
        rows = args.rows.split(",") if args.rows else DIT_ROWS
        npz = Path(tmp) / "latents.npz"
        np.savez(
            npz, x=np.random.default_rng(0).uniform(-1, 1, (max(4 * args.batch, 2048), 4, 32, 32)).astype(np.float32)
        )
        size = args.backbone.split("-")[1]
        extra = [
            "data.name=npz",
            f"data.root={npz}",
            "data.image_size=null",
            "data.labels=false",
            "model.name=dit",
            f"model.dit.size={size}",
            "model.dit.patch_size=2",
            f"model.dit.num_experts={args.experts}",
            "transform.pca_samples=2048",
        ]
    trainers = {}
    for row in rows:
        base, more = VARIANTS.get(row, (row, []))
        cfg = load_config(ROOT / "configs" / f"fmnist_{base}.yaml", [f"out_dir={tmp}/{row}", *overrides, *extra, *more])
        trainers[row] = Trainer(cfg)
        trainers[row].fit(until=3)  # warm-up (and compilation)
    return trainers


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--backbone", default="unet", help="unet (Fashion-MNIST configs) or dit-XS/S/B/L on 4x32x32 latents"
    )
    ap.add_argument("--rows", default="", help=f"comma-separated rows (configs or {', '.join(VARIANTS)})")
    ap.add_argument("--experts", type=int, default=0, help="DiT: mixture of experts with this many expert MLPs")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10, help="training steps per row per round")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--sample-n", type=int, default=64, help="images per sampling measurement (50 Euler steps)")
    ap.add_argument("--sample-rounds", type=int, default=3, help="rounds that also time sampling")
    ap.add_argument(
        "--peak-tflops", type=float, default=None, help="device peak for MFU when not in the built-in table"
    )
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--sampler-only", action="store_true", help="only the sampler-overhead table")
    ap.add_argument("--no-sampler-table", action="store_true", help="skip the sampler-overhead table")
    ap.add_argument(
        "--profile", default="", help="comma-separated rows to profile for 3 training steps (torch.profiler)"
    )
    args = ap.parse_args()
    if args.backbone != "unet" and args.backbone.split("-")[-1] not in ("XS", "S", "B", "L"):
        raise SystemExit(f"--backbone {args.backbone!r}: use unet or dit-XS, dit-S, dit-B, dit-L")
    os.environ["KFLOW_PROGRESS"] = "0"
    dev = torch.device(args.device)
    name = torch.cuda.get_device_name() if dev.type == "cuda" else platform.processor() or platform.machine()
    print(
        f"device: {dev} ({name}), torch {torch.__version__}, threads {torch.get_num_threads()}, "
        f"backbone {args.backbone}{f' MoE {args.experts}' if args.experts else ''}, batch {args.batch}, "
        f"compile {args.compile}"
    )
    with TemporaryDirectory() as tmp:
        trainers = make_trainers(args, tmp)
        if not args.sampler_only:
            training_table(args, trainers, dev)
        if not args.no_sampler_table:
            sampler_table(args, trainers, dev)
        for row in filter(None, args.profile.split(",")):
            profile_row(trainers[row], row, dev)


def training_table(args, trainers, dev):
    train_ips = {row: [] for row in trainers}
    sample_ips = {row: [] for row in trainers}
    # many short rounds, rows round-robin: drift of a shared machine's load hits every row alike
    for r in range(args.rounds):
        for row, tr in trainers.items():
            sync(dev)
            t = time.perf_counter()
            tr.fit(until=tr.step + args.steps)
            sync(dev)
            train_ips[row].append(args.steps * args.batch / (time.perf_counter() - t))
            if r >= args.sample_rounds:
                continue
            model = tr.ema.eval()
            t = time.perf_counter()
            with torch.autocast(dev.type, torch.bfloat16, enabled=tr.amp):
                sample(
                    model,
                    tr.path,
                    args.sample_n,
                    steps=50,
                    device=dev,
                    batch_size=args.sample_n,
                    step_allocation=tr.cfg.sample.step_allocation,
                )
            sync(dev)
            sample_ips[row].append(args.sample_n / (time.perf_counter() - t))
    peak = peak_flops(dev, args.peak_tflops)
    fm = statistics.median(train_ips["fm"])
    params = sum(p.numel() for p in trainers["fm"].model.parameters())
    print(
        f"\n{args.backbone}: {params / 1e6:.1f}M parameters; training: median of {args.rounds} rounds of "
        f"{args.steps} steps; sampling: median of {min(args.rounds, args.sample_rounds)} rounds"
    )
    print(
        "\n| run | transform | train images/s | vs FM | sample images/s (50 Euler) | vs FM | train GFLOPs/image "
        "| sample GFLOPs/image |" + (" train TFLOP/s | MFU |" if peak else "")
    )
    print("|---|---|---|---|---|---|---|---|" + ("---|---|" if peak else ""))
    sfm = statistics.median(sample_ips["fm"])
    for row, tr in trainers.items():
        ips, sps = statistics.median(train_ips[row]), statistics.median(sample_ips[row])
        line = f"| {row} | {tr.cfg.transform.name} | {ips:.1f} | {ips / fm:.3f} | {sps:.1f} | {sps / sfm:.3f} |"
        line += f" {counted_flops(tr, dev):s} |"
        if peak:
            achieved = train_flops_per_image(tr, min(args.batch, 64)) * ips
            line += f" {achieved / 1e12:.1f} | {100 * achieved / peak:.1f}% |"
        print(line)
    if dev.type == "cuda" and not peak:
        print("MFU: this GPU's peak is not in the table; pass --peak-tflops")


def profile_row(tr: Trainer, row: str, dev) -> None:
    """Where one training step's time goes: the top operators by their own device (or CPU) time."""
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
    with profile(activities=acts) as prof:
        tr.fit(until=tr.step + 3)
        sync(dev)
    key = "self_cuda_time_total" if dev.type == "cuda" else "self_cpu_time_total"
    print(f"\nprofile of 3 training steps, row {row}, by {key}:")
    print(prof.key_averages().table(sort_by=key, row_limit=14, max_name_column_width=60))


def sampler_table(args, trainers, dev):
    """sample() (band grid, 50 Euler steps) against 50 bare forward passes of the same network."""
    print("\n| run | 50 forward passes s | sample(50 Euler steps) s | overhead |")
    print("|---|---|---|---|")
    for row, tr in trainers.items():
        model = tr.ema.eval()
        x = torch.randn(args.sample_n, *tr.transform.shape, device=dev)
        k = torch.full((args.sample_n,), 0.5, device=dev)

        def bare():
            with torch.no_grad():
                for _ in range(50):
                    model(x, k)

        def sampled():
            sample(model, tr.path, args.sample_n, steps=50, device=dev, batch_size=args.sample_n)

        res = {}
        for fn in (bare, sampled, bare, sampled):
            sync(dev)
            t = time.perf_counter()
            fn()
            sync(dev)
            res.setdefault(fn.__name__, []).append(time.perf_counter() - t)
        b, s = min(res["bare"]), min(res["sampled"])
        print(f"| {row} | {b:.2f} | {s:.2f} | {100 * (s / b - 1):+.1f}% |")


if __name__ == "__main__":
    main()
