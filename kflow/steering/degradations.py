"""Linear degradations y = A x_1 + noise for restoration (super-resolution, blur, inpainting), as
dense matrices built by applying the operator to the identity (exact and cheap for the image sizes
kflow trains on, D = C*H*W up to a few thousand), and the classical restorations to compare with."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

TASKS = ("sr_box", "sr_bicubic", "blur", "inpaint")


def gaussian_kernel(sigma: float) -> Tensor:
    r = max(1, math.ceil(3 * sigma))
    t = torch.arange(-r, r + 1, dtype=torch.float64)
    g = torch.exp(-(t**2) / (2 * sigma**2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


@dataclass
class Degradation:
    name: str
    shape: tuple  # (C, H, W) of the clean image
    matrix: Tensor  # (m, D) float64: y = matrix @ x.flatten()
    out_shape: tuple  # shape of y as an image (for pictures and baselines)
    sigma_y: float = 0.0
    params: dict | None = None  # factor / sigma, for the classical baselines
    # Tikhonov weight of the consistency step for noisy y: lambda = reg * sigma_y^2. reg = 1 (the
    # plain noise variance) amplifies the noise in weakly observed directions; 10 is the value that
    # suits FM and K-Flow alike on training images (blur sigma 1 and 2, x2 and x4 super-resolution).
    reg: float = 10.0
    # noise-free y: singular values of the (band-restricted) operator below cutoff * the largest are
    # not inverted. Exact inversion is right for blur (every direction is seen), but through an
    # inpainting mask a coarse coefficient that barely touches the visible pixels would be set from
    # them with a gain of 1 / s and fill the hole with extreme values; inpainting leaves those
    # directions (s < 0.1) to the model.
    cutoff: float = 1e-6

    def __call__(self, x: Tensor, seed: int = 0) -> Tensor:
        """Observe a batch (N, *shape): A x plus Gaussian noise of std sigma_y, as (N, *out_shape)."""
        y = x.flatten(1).double() @ self.matrix.T
        if self.sigma_y > 0:
            y = y + self.sigma_y * torch.randn(y.shape, generator=torch.Generator().manual_seed(seed), dtype=y.dtype)
        return y.reshape(len(x), *self.out_shape).to(x.dtype)

    def pinv(self, matrix: Tensor | None = None) -> Tensor:
        """(D, m) pseudo-inverse of the operator (or of `matrix`, the operator restricted to some
        bands); for noisy observations a Tikhonov-regularised one (lambda = reg sigma_y^2)."""
        u, s, vh = torch.linalg.svd(self.matrix if matrix is None else matrix, full_matrices=False)
        if self.sigma_y > 0:
            inv = s / (s**2 + self.reg * self.sigma_y**2)
        else:
            inv = torch.where(s > self.cutoff * s.max(), 1 / s, torch.zeros_like(s))
        return vh.T @ (inv[:, None] * u.T)


def _matrix(fn, shape) -> Tensor:
    D = math.prod(shape)
    eye = torch.eye(D, dtype=torch.float64).reshape(D, *shape)
    return fn(eye).reshape(D, -1).T.contiguous()  # (m, D)


def make_degradation(
    task: str, shape, factor: int = 2, sigma: float = 1.0, sigma_y: float = 0.0, mask: Tensor | None = None
) -> Degradation:
    """task: 'sr_box' (average pooling by `factor`), 'sr_bicubic' (antialiased bicubic downsampling),
    'blur' (Gaussian, std `sigma` pixels, circular boundary), 'inpaint' (keep pixels where mask is 1;
    default: the centre half of the image missing)."""
    C, H, W = shape
    if task in ("sr_box", "sr_bicubic") and (H % factor or W % factor):
        raise ValueError(f"{H}x{W} images cannot be downsampled by {factor}; use a factor dividing the size")
    if task == "sr_box":
        fn, out = (lambda x: F.avg_pool2d(x, factor)), (C, H // factor, W // factor)
    elif task == "sr_bicubic":
        fn = lambda x: F.interpolate(
            x,
            size=(H // factor, W // factor),
            mode="bicubic",
            antialias=True,
            align_corners=False,
        )
        out = (C, H // factor, W // factor)
    elif task == "blur":
        kern = gaussian_kernel(sigma)
        r = kern.shape[0] // 2
        w = kern.expand(C, 1, *kern.shape)
        fn, out = (lambda x: F.conv2d(F.pad(x, (r, r, r, r), mode="circular"), w, groups=C)), (C, H, W)
    elif task == "inpaint":
        if mask is None:
            mask = torch.ones(shape, dtype=torch.float64)
            mask[:, H // 4 : 3 * H // 4, W // 4 : 3 * W // 4] = 0
        keep = mask.flatten().bool()
        M = torch.eye(math.prod(shape), dtype=torch.float64)[keep]
        return Degradation(task, tuple(shape), M, (int(keep.sum()),), sigma_y, {}, cutoff=0.1)
    else:
        raise ValueError(f"unknown restoration task {task!r}; use one of {', '.join(TASKS)}")
    return Degradation(task, tuple(shape), _matrix(fn, shape), out, sigma_y, {"factor": factor, "sigma": sigma})


def baseline(y: Tensor, A: Degradation) -> Tensor:
    """Classical restorations: bicubic upsampling for super-resolution, Wiener deconvolution for
    blur (the exact circular blur, noise-to-signal ratio from sigma_y), zero filling for inpainting."""
    C, H, W = A.shape
    if A.name in ("sr_box", "sr_bicubic"):
        return F.interpolate(y.float(), size=(H, W), mode="bicubic", align_corners=False).clamp(-1, 1)
    if A.name == "blur":
        kern = gaussian_kernel(A.params["sigma"])
        r = kern.shape[0] // 2
        h = torch.zeros(H, W, dtype=torch.float64)
        for a in range(-r, r + 1):  # the kernel placed circularly around pixel (0, 0)
            for b in range(-r, r + 1):
                h[a % H, b % W] += kern[a + r, b + r]
        Hf = torch.fft.fft2(h)
        nsr = A.sigma_y**2 / 0.3 + 1e-4  # noise power over the pixel variance of the data (about 0.3)
        X = torch.fft.fft2(y.double()) * Hf.conj() / (Hf.abs() ** 2 + nsr)
        return torch.fft.ifft2(X).real.float().clamp(-1, 1)
    return (y.flatten(1).double() @ A.matrix).reshape(len(y), C, H, W).float()  # zeros where unobserved
