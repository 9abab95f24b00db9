"""The CUDA code paths, run for real: `pytest -m cuda` on a GPU machine (skipped elsewhere, with the
reason). Tolerances: float32 on both sides agrees to ~1e-5 relative, but cuDNN convolutions use
TF32 by default (10-bit mantissa), so anything through a convolution is compared at 1e-2 relative
in norm; bf16 autocast results are only checked for being finite and for learning."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from kflow import FourierTransform, KFlowPath, PCATransform, WaveletTransform
from kflow.config import load_config
from kflow.sampling import SOLVERS, sample
from kflow.training import Trainer
from kflow.utils.checkpoint import list_checkpoints

pytestmark = pytest.mark.cuda

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "digits_tiny.yaml"
CUDA = torch.device("cuda")


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("KFLOW_PROGRESS", "0")


def cfg(tmp_path, *overrides):
    return load_config(TINY, [f"out_dir={tmp_path}", "train.device=cuda", *overrides])


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


def transforms(shape, data):
    return {
        "fourier": FourierTransform(shape, num_bands=3),
        "wavelet": WaveletTransform(shape, "db6", num_bands=3),
        "pca": PCATransform.fit(data.double(), num_bands=2),
    }


@pytest.mark.parametrize("name", ["fourier", "wavelet", "pca"])
def test_transforms_and_path_on_cuda_equal_cpu(name):
    shape = (4, 16, 16)
    data = torch.randn(2048, *shape)
    T = transforms(shape, data)[name]
    x = torch.randn(64, *shape)
    c_cpu, c_gpu = T.analyze(x), T.analyze(x.to(CUDA))
    assert c_gpu.device.type == "cuda" and rel(c_gpu, c_cpu) < 1e-5
    assert rel(T.synthesize(c_gpu), x) < 1e-5
    path = KFlowPath(T)
    x_0, x_1, k = torch.randn(64, *shape), torch.randn(64, *shape), torch.rand(64)
    s_cpu = path.sample(x_0, x_1, k)
    s_gpu = path.sample(x_0.to(CUDA), x_1.to(CUDA), k.to(CUDA))
    assert rel(s_gpu.x_k, s_cpu.x_k) < 1e-5 and rel(s_gpu.dx_k, s_cpu.dx_k) < 1e-5
    assert torch.equal(s_gpu.band.cpu(), s_cpu.band)


@pytest.mark.parametrize("compile", [False, True], ids=["eager", "compile"])
def test_training_under_bf16_autocast_learns(tmp_path, compile):
    tr = Trainer(
        cfg(
            tmp_path,
            "train.steps=60",
            "train.log_every=20",
            "train.ckpt_every=60",
            "train.amp=bf16",
            f"train.compile={str(compile).lower()}",
        )
    )
    assert tr.amp and next(tr.model.parameters()).is_cuda
    assert tr.opt.defaults.get("fused"), "AdamW should be the fused CUDA kernel"
    tr.fit()
    losses = [float(r.split(",")[1]) for r in (tmp_path / "log.csv").read_text().splitlines()[1:]]
    assert len(losses) == 3 and all(map(lambda v: v == v, losses)) and losses[-1] < 0.8 * losses[0]
    assert (tmp_path / "samples" / "final.png").exists()


def test_dit_with_gradient_checkpointing_matches_without(tmp_path):
    over = [
        "model.name=dit",
        "model.dit.size=XS",
        "model.dit.patch_size=2",
        "train.amp=none",
        "train.steps=3",
        "train.ckpt_every=3",
    ]
    a = Trainer(cfg(tmp_path / "a", *over))
    a.fit()
    b = Trainer(cfg(tmp_path / "b", *over, "model.dit.grad_checkpointing=true"))
    b.fit()
    for (n, p), q in zip(a.model.named_parameters(), b.model.parameters()):
        assert rel(q, p) < 1e-3 or (p - q).abs().max() < 1e-5, n


def test_resume_on_cuda_within_tolerance(tmp_path):
    """GPU kernels (cuDNN backward, atomics) are not bit-reproducible run to run, so resume is checked
    against an uninterrupted run within a tolerance: both runs' weights agree to 1e-3 relative."""
    over = ["train.steps=10", "train.ckpt_every=4", "transform.name=wavelet", "transform.num_bands=2", "train.amp=none"]
    full = Trainer(cfg(tmp_path / "a", *over))
    full.fit()
    part = Trainer(cfg(tmp_path / "b", *over))
    part.fit(until=7)
    assert list_checkpoints(tmp_path / "b" / "checkpoints")[-1].name == "ckpt-00000004.safetensors"
    resumed = Trainer(cfg(tmp_path / "b", *over), resume=True)
    assert resumed.step == 4
    resumed.fit()
    worst = max(rel(q, p) for p, q in zip(full.model.parameters(), resumed.model.parameters()) if p.norm() > 0)
    print(f"resume on CUDA: worst relative weight difference {worst:.2e}")
    assert worst < 1e-3


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("run")
    tr = Trainer(
        load_config(
            TINY, [f"out_dir={tmp}", "train.device=cuda", "train.steps=30", "train.amp=none", "transform.num_bands=2"]
        )
    )
    tr.fit()
    return tr


@pytest.mark.parametrize("solver", list(SOLVERS))
def test_every_solver_on_cuda_matches_cpu(trained, solver):
    model = trained.ema.eval()
    x_0 = torch.randn(16, *trained.transform.shape)
    y = torch.arange(16) % trained.data.num_classes
    gpu = sample(model, trained.path, 16, solver=solver, steps=8, x_0=x_0, y=y, device=CUDA)
    cpu_model = type(model)(model.cfg)
    cpu_model.load_state_dict({k: v.cpu() for k, v in model.state_dict().items()})
    cpu = sample(cpu_model.eval(), trained.path, 16, solver=solver, steps=8, x_0=x_0, y=y, device="cpu")
    assert torch.isfinite(gpu.x).all()
    # dopri5 chooses its steps from error estimates, which TF32 perturbs: looser
    assert rel(gpu.x, cpu.x) < (5e-2 if solver == "dopri5" else 1e-2)


def test_ddp_with_nccl(tmp_path, torchrun):
    """torchrun with one process per GPU (world size 1 on a one-GPU machine): the NCCL group and DDP
    wrapper are real; the weights match a run without torchrun."""
    dump = tmp_path / "dump"
    dump.mkdir()
    n = torch.cuda.device_count()
    env = dict(os.environ, KFLOW_PROGRESS="0")
    cmd = [
        *torchrun(n),
        str(ROOT / "tests" / "training" / "ddp_worker.py"),
        str(tmp_path / "ddp"),
        str(dump),
        str(TINY),
        "cuda",
    ]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    with safe_open(dump / "rank0.safetensors", "pt") as f:
        assert f.metadata()["backend"] == "nccl"
    r0 = load_file(dump / "rank0.safetensors")
    single = Trainer(cfg(tmp_path / "single", "train.steps=6", "train.ckpt_every=3", "train.amp=none"))
    single.fit()
    for k, v in single.model.state_dict().items():
        assert rel(r0[k], v) < 1e-3 or (r0[k] - v.cpu()).abs().max() < 1e-5, k


def test_latent_pipeline_on_cuda(tmp_path):
    pytest.importorskip("diffusers")
    from kflow.data import load_dataset
    from kflow.data.latents import LatentDecoder, encode_dataset, load_latents

    sys.path.insert(0, str(ROOT / "tests" / "data"))
    from test_latents import make_vae

    vae = make_vae(tmp_path / "vae")
    images = load_dataset("digits", "train", image_size=16, limit=40)
    encode_dataset(images, vae, tmp_path / "lat_gpu", shard_size=16, device="cuda", log=lambda *_: None)
    encode_dataset(images, vae, tmp_path / "lat_cpu", shard_size=16, device="cpu", log=lambda *_: None)
    z_gpu, z_cpu = load_latents(tmp_path / "lat_gpu").x, load_latents(tmp_path / "lat_cpu").x
    assert rel(z_gpu, z_cpu) < 1e-2
    tr = Trainer(
        cfg(
            tmp_path / "run",
            "data.name=latents",
            f"data.root={tmp_path / 'lat_gpu'}",
            "data.image_size=null",
            "transform.name=wavelet",
            "transform.wavelet=haar",
            "transform.num_bands=2",
            "train.steps=5",
            "train.ckpt_every=5",
            "sample.steps=4",
            "sample.num_grid=4",
        )
    )
    tr.fit()
    assert (tmp_path / "run" / "samples" / "final.png").exists()
    z = sample(tr.ema.eval(), tr.path, 4, steps=4, device=CUDA, y=torch.zeros(4, dtype=torch.long)).x
    x = LatentDecoder(tmp_path / "lat_gpu", device="cuda")(z)
    assert x.shape == (4, 1, 16, 16) and torch.isfinite(x).all()
