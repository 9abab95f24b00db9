"""`make demo`: train a wavelet K-Flow on Fashion-MNIST for a few minutes, then write a sample
grid and a band-by-band generation strip to outputs/demo/."""
from __future__ import annotations

import time
from pathlib import Path

import torch

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "demo.yaml"


def band_strip(run, n: int = 8, steps: int = 50, seed: int = 7) -> tuple[torch.Tensor, int]:
    """(n * (B + 1), C, H, W) images (per sample, x_k at every band boundary kappa_0 .. kappa_B)
    and the number of columns B + 1."""
    from .sampling import sample

    out = sample(run.model, run.path, n, steps=steps, grid="band", seed=seed, record_bands=True)
    states = out.band_states  # (B + 1, n, C, H, W)
    return states.transpose(0, 1).reshape(-1, *states.shape[2:]), states.shape[0]


def run_demo(minutes: float = 7.0, out: str | Path = "outputs/demo", config: str | None = None) -> None:
    from .config import load_config
    from .recipe import load_run
    from .sampling import sample
    from .training import train
    from .viz.images import save_grid

    t0 = time.time()
    out = Path(out)
    cfg = load_config(config or DEFAULT_CONFIG, [f"train.max_minutes={minutes}", f"out_dir={out / 'run'}"])
    print(f"training a {cfg.transform.name} K-Flow ({cfg.transform.num_bands} bands) on {cfg.data.name} "
          f"for {minutes} min; log in {out / 'run' / 'log.csv'}")
    result = train(cfg, resume=True)
    run = load_run(result.checkpoint)
    s = sample(run.model, run.path, 64, steps=cfg.sample.steps, grid="band", seed=0)
    grid = save_grid(s.x, out / "samples.png", nrow=8)
    strip, cols = band_strip(run)
    strip_png = save_grid(strip, out / "band_strip.png", nrow=strip.shape[0] // cols, scale=3)
    print(f"done in {time.time() - t0:.0f} s: step {result.step}, loss {result.loss:.4f}, NFE {s.nfe}")
    print(f"samples:           {grid}")
    print(f"band-by-band strip: {strip_png}  (rows: samples; columns: x_k at k = "
          + ", ".join(f"{k:.2f}" for k in run.path.kappa.tolist()) + ")")
