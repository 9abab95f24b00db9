"""The studio's work, apart from the web page: a trained run and the three things the page does.

- generate: a batch from a seed, with its band-by-band strip; bands of the noise can be kept
  from an earlier batch (noise splitting per image), the rest drawn anew;
- edit: recover the noise of a real image, keep chosen bands, redraw the others or take them
  from a second image, and generate again;
- restore: super-resolution, deblurring or inpainting of a real image, training-free.

Each takes a validated request (requests.py) and returns a Result (results.py). The noise of a
batch is kept as float64 coefficients of the transform: kept bands are exact copies, so "keep
band 0" is bit-identical in band 0 by construction.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..analysis import strip_of
from ..data import FASHION_MNIST_CLASSES, load_dataset
from ..data.image_data import to_uint8
from ..metrics.psnr import psnr
from ..runs import load_run
from ..sampling import sample
from ..sampling.noise import draw_x0
from ..sampling.sampler import make_grid
from ..sampling.solvers import EVALS_PER_STEP
from ..sampling.wrappers import Counted
from ..steering import baseline, class_labels, edit_bands, guided, make_degradation, mix_bands, restore
from ..utils.errors import KFlowError
from .progress import Progress
from .requests import (
    EditRequest,
    GenerateRequest,
    ImageSource,
    RequestError,
    RestoreRequest,
)
from .results import Panel, Result
from .uploads import decode_upload

NAMED_DATASETS = ("digits", "fashion_mnist")  # runs whose test split the page can offer


class Studio:
    """One loaded run. Not thread-safe: the server runs one job at a time."""

    def __init__(self, run_dir: str | Path, device="cpu"):
        self.run_dir = Path(run_dir)
        self.run = load_run(self.run_dir, device=device)
        self.device = torch.device(device)
        self.cfg, self.path = self.run.cfg, self.run.path
        self.shape = tuple(self.path.transform.shape)  # (C, H, W) of what the model generates
        self.latent = self.run.latent
        self._test = None

    # what the page shows about the run
    def facts(self) -> dict:
        p = self.path
        fds = []
        for f in sorted(self.run_dir.glob("*.json")):
            try:
                d = json.loads(f.read_text())
            except (OSError, ValueError):
                continue
            if isinstance(d, dict) and isinstance(d.get("fd"), (int, float)):
                fds.append({"file": f.name, "fd": d["fd"], "nfe": d.get("nfe"), "n": d.get("n")})
        names = FASHION_MNIST_CLASSES if self.cfg.data.name == "fashion_mnist" else None
        classes = [names[i] if names and i < len(names) else str(i) for i in range(self.run.num_classes)]
        return {
            "run": str(self.run_dir),
            "step": self.run.step,
            "data": self.cfg.data.name,
            "shape": list(self.shape),
            "latent": self.latent,
            "transform": self.cfg.transform.name
            + (f" ({self.cfg.transform.wavelet})" if self.cfg.transform.name == "wavelet" else ""),
            "num_bands": p.num_bands,
            "kind": "flow matching (one band)" if p.num_bands == 1 else f"K-Flow, {p.num_bands} bands",
            "order": self.cfg.path.order,
            "bump": self.cfg.path.bump,
            "overlap": self.cfg.path.overlap,
            "band_scale": "none" if self.run.scale is None else [round(v, 4) for v in self.run.scale.rms.tolist()],
            "windows": [[round(a, 4) for a in w] for w in p.windows().tolist()],
            "model": self.cfg.model.name,
            "parameters": sum(q.numel() for q in self.run.model.parameters()),
            "classes": classes,
            "fd": fds,
            "test_images": 0 if self.latent else len(self.test_images()),
            "can_edit": not self.latent,
            "can_restore": not self.latent,
            "device": str(self.device),
        }

    def test_images(self) -> Tensor:
        """(N, C, H, W) the run's test split where the run's data is a named dataset, else empty."""
        if self._test is None:
            self._test = torch.empty(0, *self.shape)
            if self.cfg.data.name in NAMED_DATASETS:
                try:
                    self._test = load_dataset(self.cfg.data.name, "test", image_size=self.shape[-1], limit=2000).x
                except (KFlowError, OSError):  # no test split here (not downloaded): uploads still work
                    pass
        return self._test

    def image(self, src: ImageSource, shape=None, what: str = "image") -> Tensor:
        """(1, C, H, W) in [-1, 1] from an upload or the test split; shape defaults to the model's."""
        C, H, W = shape or self.shape
        if src.test_index is not None:
            test = self.test_images()
            if not len(test):
                raise RequestError(f"{what}: this run has no test split to pick from; upload an image instead")
            if src.test_index >= len(test):
                raise RequestError(f"{what}: test image {src.test_index} does not exist (0..{len(test) - 1})")
            x = test[src.test_index : src.test_index + 1]
            if x.shape[-2:] != (H, W):
                raise RequestError(f"{what}: test images are {x.shape[-2]}x{x.shape[-1]}, {H}x{W} are needed here")
            return x
        return decode_upload(src.upload, (C, H, W), what)

    def _labels(self, label: int | None, n: int) -> Tensor | None:
        try:
            return class_labels(label, n, self.run.num_classes)
        except ValueError as e:
            raise RequestError(f"the class field: {e}") from None

    def perform(self, req, progress: Progress, find_result=lambda job_id: None) -> Result:
        """Run any request by its kind (the one dispatch); find_result(job id) gives a kept batch."""
        if isinstance(req, GenerateRequest):
            return self.generate(req, progress, kept=find_result(req.keep_from) if req.keep_from else None)
        return getattr(self, req.kind)(req, progress)

    def _evals(self, steps: int, solver: str) -> int:
        """Model calls of one pass over the band grid (the progress bar's total)."""
        return (len(make_grid(self.path, steps, "band")) - 1) * EVALS_PER_STEP[solver]

    def generate(self, req: GenerateRequest, progress: Progress, kept: Result | None = None) -> Result:
        """kept: the result named by req.keep_from, whose noise coefficients give the kept bands."""
        t0 = time.time()
        T = self.path.transform
        y = self._labels(req.label, req.n)
        model = Counted(self.run.model, progress)
        try:
            velocity = guided(model, y, req.guidance, req.keep_class_until)
        except ValueError as e:
            raise RequestError(f"{e}: pick a class") from None
        x_0 = draw_x0(req.n, self.shape, req.seed)  # (N, *shape): the noise `kflow sample --seed` draws
        c = T.analyze(x_0.double().to(T.bands.device)).cpu()  # (N, D) its coefficients
        if req.keep_bands:
            if kept is None:
                raise RequestError("the batch to keep bands from is gone (the page keeps the last 32): generate again")
            if kept.noise is None:
                raise RequestError(
                    f"keep_from: job {req.keep_from} is not a generated batch (it is a {kept.kind} job); keep "
                    "the bands of a generate job"
                )
            if kept.noise.shape != c.shape:
                raise RequestError(
                    f"keeping bands needs the same number of images as the kept batch ({len(kept.noise)}); set n to it"
                )
            c = mix_bands(T, kept.noise, c, req.keep_bands)
            x_0 = T.synthesize(c.to(T.bands.device)).float().cpu()
        progress.total = self._evals(req.steps, req.solver)
        out = sample(
            model,
            self.path,
            req.n,
            solver=req.solver,
            steps=req.steps,
            grid="band",
            y=y,
            x_0=x_0,
            device=self.device,
            record_bands=True,
            velocity_for=velocity,
        )
        if not torch.isfinite(out.x).all():
            raise RequestError("the samples are NaN/Inf (too few steps for this run?); try more steps")
        strip, titles = strip_of(self.path, out).grid("all")  # (N * (M + 1 + B), *shape)
        x, strip = self.run.to_image(out.x), self.run.to_image(strip)
        cols = len(titles)
        arrays = {
            "x": x.float(),
            "x_uint8": to_uint8(x),
            "x_0": x_0,
            "noise_coefficients": c,  # (N, D) float64: the noise in the transform's coefficients
            "band_of_coefficient": T.bands.cpu(),  # (D,) band of each coefficient
            "strip": strip.reshape(req.n, cols, *strip.shape[1:]).float(),
            "strip_titles": np.array(titles),
            "settings": json.dumps(asdict(req)),
        }
        if y is not None:
            arrays["y"] = y
        if self.latent:
            arrays["z"] = out.x
        kept_msg = f", bands {req.keep_bands} kept" if req.keep_bands else ""
        msg = f"{req.n} samples, seed {req.seed}{kept_msg}, {req.solver} {req.steps} steps (NFE {out.nfe})"
        rows = math.ceil(req.n / 8)
        panels = [
            Panel("samples", x, rows),
            Panel("band by band, one row per sample: " + ", ".join(titles), strip, rows=req.n),
        ]
        if req.keep_bands:  # the batch whose noise was kept on those bands, to compare with
            panels.insert(1, Panel(f"the batch bands {req.keep_bands} were kept from", kept.arrays["x"], rows))
        return Result("generate", panels, f"{msg} in {time.time() - t0:.1f} s", arrays, noise=c)

    def _pixel_only(self, what: str) -> None:
        self.run.require_unscaled(what)
        if self.latent:
            raise RequestError(f"{what} works on pixel runs; this run generates VAE latents")

    def edit(self, req: EditRequest, progress: Progress) -> Result:
        self._pixel_only("band editing")
        t0 = time.time()
        x = self.image(req.image)
        donor = self.image(req.donor, what="second image") if req.donor is not None else None
        n = 1 if donor is not None else req.n  # a swap is one image; redrawing makes n variations
        x1 = x.expand(n, *self.shape).contiguous().to(self.device)
        y = self._labels(req.label, n)
        passes = 3 if donor is None else 4  # invert, regenerate, reconstruct (+ invert the donor)
        progress.total = passes * self._evals(req.steps, req.solver)
        out = edit_bands(
            Counted(self.run.model, progress),
            self.path,
            x1,
            keep_bands=req.keep_bands,
            seed=req.seed,
            steps=req.steps,
            solver=req.solver,
            y=None if y is None else y.to(self.device),
            donor=None if donor is None else donor.to(self.device),
        )
        edits, rec = out.x.cpu(), out.reconstruction[:1].cpu()
        if not torch.isfinite(edits).all():
            raise RequestError("the edit is NaN/Inf; try more steps")
        row = [x, rec] + ([donor] if donor is not None else []) + [edits]
        titles = "image, reconstruction, " + ("second image, swap" if donor is not None else f"{n} edits")
        p = psnr(rec.clamp(-1, 1), x).item()
        msg = (
            f"kept bands {req.keep_bands}; reconstruction PSNR {p:.2f} dB ({req.solver}, {req.steps} steps each way)"
            f" in {time.time() - t0:.1f} s"
        )
        arrays = {
            "x": edits,
            "x_uint8": to_uint8(edits),
            "image": x,
            "reconstruction": rec,
            "x_0": out.x_0.cpu(),
            "x_0_edited": out.x_0_edited.cpu(),
            "settings": json.dumps({k: v for k, v in asdict(req).items() if k not in ("image", "donor")}),
        }
        if donor is not None:
            arrays["donor"] = donor
        return Result("edit", [Panel(titles, torch.cat(row), rows=1)], msg, arrays)

    def restore(self, req: RestoreRequest, progress: Progress) -> Result:
        self._pixel_only("restoration")
        t0 = time.time()
        try:
            A = make_degradation(req.task, self.shape, factor=req.factor, sigma=req.sigma, sigma_y=req.noise)
        except ValueError as e:
            raise RequestError(str(e)) from None
        if req.observed:
            if len(A.out_shape) != 3:
                raise RequestError(f"{req.task} takes the clean image; untick 'already degraded'")
            y1, clean = self.image(req.image, A.out_shape, "observation"), None
        else:
            clean = self.image(req.image)
            y1 = A(clean, seed=req.seed)
        y = y1.expand(req.n, *y1.shape[1:]).contiguous()
        progress.total = self._evals(req.steps, "euler")  # one model call per step
        out = restore(Counted(self.run.model, progress), self.path, y.to(self.device), A, req.steps, req.seed)
        x = out.x.cpu()
        if not torch.isfinite(x).all():
            raise RequestError("the restoration is NaN/Inf; try more steps or a smaller noise level")
        base = baseline(y1, A)
        row = ([clean] if clean is not None else []) + [base, x]
        titles = ("original, " if clean is not None else "") + f"classical baseline, {req.n} restorations"
        arrays = {
            "x": x,
            "x_uint8": to_uint8(x),
            "observation": y1,
            "baseline": base,
            "settings": json.dumps({k: v for k, v in asdict(req).items() if k != "image"}),
        }
        msg = f"{req.task}: NFE {out.nfe}"
        if clean is not None:
            p, pb = psnr(x.clamp(-1, 1), clean.expand_as(x)), psnr(base, clean).item()
            arrays.update(original=clean, psnr=p, psnr_baseline=np.float64(pb))
            msg += f", PSNR {p.mean():.2f} dB (best {p.max():.2f}), classical baseline {pb:.2f} dB"
        return Result("restore", [Panel(titles, torch.cat(row), rows=1)], f"{msg} in {time.time() - t0:.1f} s", arrays)
