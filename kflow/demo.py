"""`make demo`: train a wavelet K-Flow on Fashion-MNIST for a few minutes, then write a sample
grid and a band-by-band generation strip to outputs/demo/."""

from __future__ import annotations

import time
from pathlib import Path

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "demo.yaml"


def run_demo(minutes: float = 7.0, out: str | Path = "outputs/demo", config: str | None = None) -> None:
    from .analysis import band_strip
    from .config import load_config
    from .runs import load_run
    from .sampling import sample
    from .steering.guidance import classes_in_turn
    from .training import train
    from .viz.images import save_image_grid

    t0 = time.time()
    out = Path(out)
    cfg = load_config(config or DEFAULT_CONFIG, [f"train.max_minutes={minutes}", f"out_dir={out / 'run'}"])
    print(
        f"training a {cfg.transform.name} K-Flow ({cfg.transform.num_bands} bands) on {cfg.data.name} "
        f"for {minutes} min; log in {out / 'run' / 'log.csv'}"
    )
    result = train(cfg, resume=True)
    run = load_run(result.checkpoint)
    n_cls = run.num_classes
    y = classes_in_turn(80, n_cls)  # one class per column
    s = sample(
        run.model,
        run.path,
        80 if n_cls else 64,
        steps=cfg.sample.steps,
        grid="band",
        seed=0,
        y=y,
        step_allocation=cfg.sample.step_allocation,
    )
    grid = save_image_grid(run.to_image(s.x), out / "samples.png", nrow=8)
    strip = band_strip(run.model, run.path, n=8, seed=7, y=classes_in_turn(8, n_cls))
    images, titles = strip.grid("all")
    strip_png = save_image_grid(run.to_image(images), out / "band_strip.png", nrow=8, scale=3)
    windows = ", ".join(f"band {b} [{lo:.2f}, {hi:.2f}]" for b, (lo, hi) in enumerate(run.path.windows().tolist()))
    print(f"done in {time.time() - t0:.0f} s: step {result.step}, loss {result.loss:.4f}, NFE {s.nfe}")
    print(f"k-windows:          {windows}")
    print(f"samples:           {grid}" + ("  (one class per column)" if n_cls else ""))
    print(f"band-by-band strip: {strip_png}  (rows: samples; columns: {', '.join(titles)})")
