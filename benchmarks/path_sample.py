"""Cost of KFlowPath.sample per transform, next to the one-band identity path and to one training
step of the default ~1.8M-parameter UNet at the same batch, all in one run.

    python benchmarks/path_sample.py [--repeats 20] [--device cpu]
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from kflow import FourierTransform, IdentityTransform, KFlowPath, PCATransform, WaveletTransform
from kflow.models import UNet, UNetConfig


def timeit(fn, repeats: int, device) -> float:
    fn()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    times.sort()
    return times[len(times) // 2]  # median


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    device = torch.device(args.device)
    name = torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or platform.machine()
    print(f"device: {device} ({name}), torch {torch.__version__}, threads {torch.get_num_threads()}")
    print("| batch | transform | sample() ms | vs identity | UNet step ms | sample / step |")
    print("|---|---|---|---|---|---|")
    for shape in [(256, 1, 32, 32), (64, 4, 32, 32)]:
        N, C, H, W = shape
        x0, x1 = torch.randn(shape, device=device), torch.randn(shape, device=device)
        k = torch.rand(N, device=device)
        pca_data = torch.randn(2 * C * H * W, C, H, W).cumsum(-1)
        transforms = {
            "identity (FM)": IdentityTransform((C, H, W)),
            "fourier 3 bands": FourierTransform((C, H, W), num_bands=3),
            "wavelet db6 3 bands": WaveletTransform((C, H, W), "db6", num_bands=3),
            "wavelet haar 3 bands": WaveletTransform((C, H, W), "haar", num_bands=3),
            "pca 3 bands": PCATransform.fit(pca_data, num_bands=3),
        }
        model = UNet(UNetConfig(in_channels=C, image_size=H)).to(device)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

        def step():
            opt.zero_grad(set_to_none=True)
            (model(x1, k) - x0).pow(2).mean().backward()
            opt.step()

        step_t = timeit(step, max(3, args.repeats // 4), device)
        base = None
        for tname, T in transforms.items():
            path = KFlowPath(T, bump="cosine")
            t = timeit(lambda: path.sample(x0, x1, k), args.repeats, device)
            base = base or t
            print(
                f"| {N}x{C}x{H}x{W} | {tname} | {1e3 * t:.2f} | {t / base:.1f}x | {1e3 * step_t:.0f} "
                f"| {100 * t / step_t:.2f}% |"
            )


if __name__ == "__main__":
    main()
