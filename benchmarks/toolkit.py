"""The benchmarks' toolkit: the rows and profiles every study shares, the training budget a row
gets, the classifier and its reference features, cached result cells, reports.

Scripts in this folder import it as `from toolkit import ...` (Python puts a script's own folder
on sys.path). A cell is one measured result (a row, a solver, an NFE, ...) stored as JSON in the
run's folder: an interrupted study continues where it stopped, and finished cells are reused.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from kflow.config import Config, load_config
from kflow.metrics import FeatureClassifier, reference_features, score_features, train_classifier
from kflow.runs import LoadedRun, load_run
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
    # band-localized compute (model.resolution=stage): every stage at the resolution of its started bands.
    # The adopted schedule, and staggered starts with a shared end (2 bands: 16x16 then 32x32; 3 bands:
    # 8x8, 16x16, 32x32), all with the window k-embedding and logit-normal k
    "wavelet2_o50_win_logit_stage": (
        "wavelet2",
        ["path.overlap=0.5", "model.k_embedding=window", "train.k_density=logit_normal", "model.resolution=stage"],
    ),
    "wavelet2_stag_logit_stage": (
        "wavelet2",
        [
            "path.windows=[[0.0,1.0],[0.5,1.0]]",
            "model.k_embedding=window",
            "train.k_density=logit_normal",
            "model.resolution=stage",
        ],
    ),
    "wavelet3_stag_logit_stage": (
        "wavelet3",
        [
            "path.windows=[[0.0,1.0],[0.3333333333333333,1.0],[0.6666666666666666,1.0]]",
            "model.k_embedding=window",
            "train.k_density=logit_normal",
            "model.resolution=stage",
        ],
    ),
    # the same schedule on radial Fourier bands (stage images are centred crops of the spectrum)
    "fourier3_stag_logit_stage": (
        "fourier3",
        [
            "path.windows=[[0.0,1.0],[0.3333333333333333,1.0],[0.6666666666666666,1.0]]",
            "model.k_embedding=window",
            "train.k_density=logit_normal",
            "model.resolution=stage",
        ],
    ),
    # levers on the 3-band staged row: the same stage counts every step (stratified), one stage per
    # step (drawn with the k-density's mass), a backbone per stage, a larger share of the coarse stage
    "wavelet3_stag_logit_stage_strat": ("wavelet3_stag_logit_stage", ["train.stage_batches=stratified"]),
    "wavelet3_stag_logit_stage_one": ("wavelet3_stag_logit_stage", ["train.stage_batches=one"]),
    "wavelet3_stag_logit_stage_strat_own": ("wavelet3_stag_logit_stage_strat", ["model.stage_weights=own"]),
    "wavelet3_stag_logit_stage_strat_coarse": (
        "wavelet3_stag_logit_stage_strat",
        ["train.stage_share=[0.5,0.3,0.2]"],
    ),
    # the coarse stage's own UNet twice as wide (an 8x8 image: cheap), the others as FM's
    "wavelet3_stag_logit_stage_strat_own_wide": (
        "wavelet3_stag_logit_stage_strat_own",
        ["model.stage_channels=[32,16,16]"],
    ),
    # the recommended configuration (configs/fmnist_wavelet3_staged.yaml): the wide row with the fused
    # AdamW kernel and the coarse stage given half the sampling steps (steps 2:1:1 over the stages)
    "wavelet3_staged": (
        "wavelet3_stag_logit_stage_strat_own_wide",
        ["train.adamw=fused", "sample.step_allocation=[2,1,1]", "train.stage_calls=threads"],
    ),
    # the same with its backbones run one after another (train.stage_calls=serial, the default)
    "wavelet3_staged_serial": ("wavelet3_staged", ["train.stage_calls=serial"]),
    # levers on the recommended row for data whose coarse band holds nearly everything (digits32):
    # the coarse stage's share of every batch up (DFM's lever), or its UNet three times as wide
    "wavelet3_staged_coarse": ("wavelet3_staged", ["train.stage_share=[0.5,0.3,0.2]"]),
    "wavelet3_staged_coarse70": ("wavelet3_staged", ["train.stage_share=[0.7,0.2,0.1]"]),
    "wavelet3_staged_w48": ("wavelet3_staged", ["model.stage_channels=[48,16,16]"]),
    # the coarse share with stage 0's own UNet and one UNet shared by the finer stages (stage_weights=coarse):
    # the fine stages' backbone then learns from half of every batch instead of 30% and 20%
    "wavelet3_staged_cw": ("wavelet3_staged_coarse", ["model.stage_weights=coarse"]),
    "wavelet3_staged_c": ("wavelet3_staged", ["model.stage_weights=coarse"]),
    # later starts of the finer bands (1/2, 3/4): the coarse stage gets half of k and of the k-density
    "wavelet3_staged_late": ("wavelet3_staged", ["path.windows=[[0.0,1.0],[0.5,1.0],[0.75,1.0]]"]),
    # the coarse stage at 8x8 on its own UNet, the finer stages on one full-resolution UNet (what the
    # splice of a staged run's stage 0 into its full-resolution twin scored best): model.resolution=coarse
    "wavelet3_hybrid": ("wavelet3_staged", ["model.resolution=coarse", "model.stage_weights=coarse"]),
    "wavelet3_hybrid_serial": ("wavelet3_hybrid", ["train.stage_calls=serial"]),
    "wavelet3_hybrid_311": ("wavelet3_hybrid", ["sample.step_allocation=[3,1,1]"]),
    # stage 0 on its own 8x8 UNet, stages 1 and 2 on one UNet that takes the 16x16 stage image at its
    # 16x16 level (model.stage_entry=level, a nested UNet): the hybrid's shared fine-stage network at
    # the staged row's resolutions
    "wavelet3_nested": ("wavelet3_staged", ["model.stage_weights=coarse", "model.stage_entry=level"]),
    # every stage in one UNet at its own level (stage 0 at the 8x8 level)
    "wavelet3_nested_all": (
        "wavelet3_staged",
        ["model.stage_weights=shared", "model.stage_channels=null", "model.stage_entry=level"],
    ),
    "wavelet3_stag_logit_stage_strat_own_coarse": (
        "wavelet3_stag_logit_stage_strat_own",
        ["train.stage_share=[0.5,0.3,0.2]"],
    ),
    # the same schedule with the full-resolution network at every k (what the stages save)
    "wavelet3_stag_logit": (
        "wavelet3",
        [
            "path.windows=[[0.0,1.0],[0.3333333333333333,1.0],[0.6666666666666666,1.0]]",
            "model.k_embedding=window",
            "train.k_density=logit_normal",
        ],
    ),
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
    while base in VARIANTS:  # a variant of a variant: its overrides first
        base, more = VARIANTS[base]
        extra = [*more, *extra]
    return load_config(ROOT / "configs" / f"fmnist_{base}.yaml", [*PAPER_PATH, *extra, *overrides])


def row_config(
    row: str, profile: str, steps: int, seed: int = 0, work: str = "runs/quality", tag: str = "", extra=()
) -> Config:
    """The config of `row` under a profile's budget: its backbone, batch, steps and seed; the run folder
    {work}/{profile}-{steps}-{row}{tag}[-seed{seed} when seed != 0], one checkpoint at the end, no
    preview grids."""
    prof = PROFILES[profile]
    tag = tag + (f"-seed{seed}" if seed else "")  # each seed its own run (cells are cached per run)
    overrides = [
        *prof["model"],
        f"train.steps={steps}",
        f"train.batch_size={prof['batch']}",
        f"train.seed={seed}",
        f"out_dir={work}/{profile}-{steps}-{row}{tag}",
        "train.sample_every=0",
        f"train.ckpt_every={steps}",
        *extra,
    ]
    cfg = config_for(row, overrides)
    widths = cfg.model.stage_channels
    if widths and cfg.model.unet.channels != CPU_CHANNELS:  # the rows' stage widths are the CPU profile's
        scale = cfg.model.unet.channels / CPU_CHANNELS
        cfg = config_for(row, [*overrides, f"model.stage_channels=[{','.join(str(round(w * scale)) for w in widths)}]"])
    return cfg


CPU_CHANNELS = 16  # the CPU profile's UNet width, which the stage widths in VARIANTS are written for


class TrainedRow:
    """A row trained (or found finished) under its config: the loaded run and its training speed."""

    def __init__(self, cfg: Config, device):
        t0 = time.time()
        res = train(cfg, resume=True)  # returns at once when the run is finished
        self.cfg, self.train_s, self.out_dir = cfg, time.time() - t0, res.out_dir
        with open(Path(cfg.out_dir) / "log.csv") as f:
            ips = [float(r["images_per_s"]) for r in csv.DictReader(f)]
        self.images_per_s = sorted(ips)[len(ips) // 2] if ips else float("nan")  # the median log window
        self.device = device
        self._run: LoadedRun | None = None

    @property
    def run(self) -> LoadedRun:
        if self._run is None:
            self._run = load_run(self.out_dir, device=self.device)
        return self._run


def cell(path: Path, compute: Callable[[], dict]) -> dict:
    """The result stored at `path` (JSON), computed and stored first when it is not there yet."""
    if path.exists():
        return json.loads(path.read_text())
    r = compute()
    path.write_text(json.dumps(r))
    return r


def score_images(
    clf: FeatureClassifier, images: torch.Tensor, real: torch.Tensor, real_y: torch.Tensor | None = None
) -> dict:
    """FD / precision / recall of images in [-1, 1] (clamped) in the classifier's features; with the
    reference labels real_y also the generated class mix: the classifier's count per class and its
    total-variation distance to the reference's label shares (0: the same mix, 1: disjoint)."""
    x = images.clamp(-1, 1)
    sc = score_features(clf.embed(x), real)
    out = dict(fd=sc.fd, precision=sc.precision, recall=sc.recall)
    if real_y is not None:
        classes = int(max(real_y.max(), clf.info.num_classes - 1)) + 1
        counts = torch.bincount(clf.predict(x), minlength=classes).double()
        ref = torch.bincount(real_y.long(), minlength=classes).double()
        out.update(
            class_counts=counts.long().tolist(),
            class_tv=0.5 * (counts / counts.sum() - ref / ref.sum()).abs().sum().item(),
        )
    return out


@dataclass
class Setup:
    device: torch.device
    hardware: str  # a line for the report's header
    clf: FeatureClassifier  # the feature classifier (trained when missing)
    real: torch.Tensor  # (N, F) features of the Fashion-MNIST test split
    real_y: torch.Tensor | None  # (N,) its labels


def digits32(work: str = "runs/digits32") -> dict[str, Path]:
    """The second dataset: sklearn's 8x8 digits (kflow's own train/test split) resized to 32x32
    (bilinear, antialiased), written once as uint8 .npz files {train, test}."""
    import numpy as np

    from kflow.data.datasets import load_digits

    paths = {split: Path(work) / f"{split}.npz" for split in ("train", "test")}
    for split, path in paths.items():
        if not path.exists():
            d = load_digits(split)
            x = torch.nn.functional.interpolate(d.x, size=(32, 32), mode="bilinear", antialias=True)
            u8 = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(path, x=u8, y=d.y.numpy())
    return paths


def dataset_overrides(dataset: str) -> list[str]:
    """Config overrides that train a row on `dataset` (fashion_mnist: the rows as they are)."""
    if dataset == "fashion_mnist":
        return []
    if dataset == "digits32":
        return ["data.name=npz", f"data.root={digits32()['train']}"]
    raise ValueError(f"unknown benchmark dataset {dataset!r}; use fashion_mnist or digits32")


def setup(classifier: str, dataset: str = "fashion_mnist") -> Setup:
    """Device, a hardware line, the classifier (trained when missing) and the reference features/labels:
    Fashion-MNIST's test split; for digits32 its training split (its test split has only 270 images)."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    os.environ.setdefault("KFLOW_PROGRESS", "0")
    hw = (
        torch.cuda.get_device_name()
        if device.type == "cuda"
        else f"{platform.machine()} CPU, {torch.get_num_threads()} threads"
    )
    clf_path = Path(classifier)
    if dataset == "digits32":
        paths = digits32()
        if not clf_path.exists():
            train_classifier("npz", clf_path, epochs=30, root=str(paths["train"]))
        clf = FeatureClassifier.load(clf_path)
        real, real_y = reference_features(clf, clf_path, "npz", root=str(paths["train"]))
        return Setup(device, hw, clf, real, real_y)
    if not clf_path.exists():
        train_classifier("fashion_mnist", clf_path, epochs=3)
    clf = FeatureClassifier.load(clf_path)
    real, real_y = reference_features(clf, clf_path, "fashion_mnist", "test")
    return Setup(device, hw, clf, real, real_y)


def report(head: str, table: str, rows: list[dict], out: str | None) -> None:
    """Print the header and table; with `out`, also write them as markdown + JSON (out.md, out.json)."""
    print("\n" + head + "\n\n" + table)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).with_suffix(".md").write_text(head + "\n\n" + table + "\n")
        Path(out).with_suffix(".json").write_text(json.dumps({"header": head, "rows": rows}, indent=2))
