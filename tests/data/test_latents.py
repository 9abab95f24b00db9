"""The latent pipeline with a tiny randomly initialised AutoencoderKL saved to a temp folder:
encode (batched, sharded, resumable, torchrun), load, train a few steps, sample, decode."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("diffusers")

from kflow.data import DataError, ImageData, load_dataset  # noqa: E402
from kflow.data.latents import LatentDecoder, encode_dataset, load_latents, load_vae, read_manifest  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def make_vae(folder: Path) -> Path:
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    vae = AutoencoderKL(
        in_channels=1,
        out_channels=1,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        block_out_channels=(8, 16),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=4,
        sample_size=16,
    )
    vae.save_pretrained(str(folder), safe_serialization=True)
    return folder


@pytest.fixture(scope="module")
def vae_dir(tmp_path_factory):
    return make_vae(tmp_path_factory.mktemp("vae"))


@pytest.fixture(scope="module")
def images():
    return load_dataset("digits", "train", image_size=16, limit=40)  # (40, 1, 16, 16)


def shard_bytes(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("shard-*.safetensors"))}


def encode_cmd(launcher: list, vae_dir, out, limit: int, batch_size: int | None = None) -> list:
    """`kflow data encode` of the first `limit` digits at 16x16 in shards of 8, run by `launcher`."""
    args = ["data", "encode", "--vae", str(vae_dir), "--dataset", "digits", "--image-size", "16"]
    args += ["--limit", str(limit), "--shard-size", "8", "--out", str(out)]
    return [*launcher, *args, *(["--batch-size", str(batch_size)] if batch_size else [])]


def test_encode_matches_the_vae_and_loads_back(vae_dir, images, tmp_path):
    info = encode_dataset(images, vae_dir, tmp_path / "lat", batch_size=7, shard_size=16, log=lambda *_: None)
    assert info.manifest["complete"] and info.num_shards == 3 and info.shape == (4, 8, 8)
    data = load_latents(tmp_path / "lat")
    vae = load_vae(vae_dir)
    with torch.no_grad():
        d = vae.encode(images.x).latent_dist
    assert torch.allclose(data.x, 0.18215 * d.mean, atol=1e-5)
    assert torch.equal(data.y, images.y) and data.num_classes == 10
    # mean_std keeps the std too: a seeded draw differs from the mean by scale * std * eps
    drawn = load_latents(tmp_path / "lat", draw="sample", seed=3)
    eps = (drawn.x - data.x) / (0.18215 * d.std)
    assert abs(eps.mean().item()) < 0.1 and abs(eps.std().item() - 1) < 0.1
    # decoding inverts the scale
    dec = LatentDecoder(tmp_path / "lat", device="cpu")(data.x[:4])
    with torch.no_grad():
        ref = vae.decode(d.mean[:4]).sample.clamp(-1, 1)
    assert torch.allclose(dec, ref, atol=1e-5)


def test_sampled_store_is_seeded_and_resume_is_bit_identical(vae_dir, images, tmp_path):
    full = tmp_path / "full"
    encode_dataset(images, vae_dir, full, store="sample", shard_size=8, seed=5, log=lambda *_: None)
    part = tmp_path / "part"
    encode_dataset(images, vae_dir, part, store="sample", shard_size=8, seed=5, log=lambda *_: None)
    for p in sorted(part.glob("shard-*"))[2:]:  # as if killed after two shards
        p.unlink()
    m = json.loads((part / "manifest.json").read_text())
    (part / "manifest.json").write_text(json.dumps(dict(m, complete=False)))
    with pytest.raises(DataError, match="unfinished encoding"):
        load_latents(part)
    logs = []
    encode_dataset(images, vae_dir, part, store="sample", shard_size=8, seed=5, log=logs.append)
    assert any("resumed: 2 finished" in line for line in logs)
    assert shard_bytes(part) == shard_bytes(full)


def test_interrupted_encoding_continues_where_it_stopped(vae_dir, tmp_path):
    """A real `kflow data encode` SIGKILLed after some shards: the rerun reuses them, encodes only
    the rest, and ends with the bytes of an uninterrupted encoding."""
    import signal
    import time

    def cmd(out):
        return encode_cmd([sys.executable, "-m", "kflow.cli.main"], vae_dir, out, limit=400, batch_size=8)

    env = dict(os.environ, OMP_NUM_THREADS="1")
    ref, out = tmp_path / "ref", tmp_path / "out"
    assert subprocess.run(cmd(ref), env=env, capture_output=True, timeout=300).returncode == 0
    proc = subprocess.Popen(cmd(out), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while len(list(out.glob("shard-*.safetensors"))) < 3 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = len(list(out.glob("shard-*.safetensors")))
    assert 3 <= before < 50, f"the kill came too late ({before} of 50 shards)"
    assert not json.loads((out / "manifest.json").read_text())["complete"]
    res = subprocess.run(cmd(out), env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert f"resumed: {before} finished shard(s) reused" in res.stdout
    assert res.stdout.count("encoded (") == 50 - before
    assert shard_bytes(out) == shard_bytes(ref)
    assert not list(out.glob(".*tmp"))


def test_torchrun_splits_the_shards_and_matches_one_process(vae_dir, images, tmp_path, torchrun):
    encode_dataset(images, vae_dir, tmp_path / "one", shard_size=8, log=lambda *_: None)
    cmd = encode_cmd([*torchrun(2), "-m", "kflow.cli.main"], vae_dir, tmp_path / "two", limit=40)
    res = subprocess.run(cmd, env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "[rank 0]" in res.stdout and "[rank 1]" in res.stdout
    assert shard_bytes(tmp_path / "two") == shard_bytes(tmp_path / "one")
    assert read_manifest(tmp_path / "two").manifest["complete"]


def test_bad_latent_inputs(vae_dir, images, tmp_path):
    with pytest.raises(DataError, match="no config.json.*nothing is downloaded"):
        encode_dataset(images, tmp_path / "missing", tmp_path / "a")
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text((vae_dir / "config.json").read_text())
    (pickled / "diffusion_pytorch_model.bin").write_bytes(b"\x80\x04not really")
    with pytest.raises(DataError, match="never loads pickled"):
        encode_dataset(images, pickled, tmp_path / "b")
    encode_dataset(images, vae_dir, tmp_path / "c", shard_size=16, log=lambda *_: None)
    with pytest.raises(DataError, match="another encoding.*differs in shard_size"):
        encode_dataset(images, vae_dir, tmp_path / "c", shard_size=8, log=lambda *_: None)
    rgb = ImageData(images.x.expand(-1, 2, -1, -1), None, 0, "two-channel")
    with pytest.raises(DataError, match="2 channels and the VAE takes 1"):
        encode_dataset(rgb, vae_dir, tmp_path / "d")
    with pytest.raises(DataError, match="not a latent folder"):
        load_latents(tmp_path)
    with pytest.raises(DataError, match="leave data.image_size unset"):
        load_dataset("latents", root=str(tmp_path / "c"), image_size=32)


def test_train_sample_decode_on_latents(vae_dir, images, tmp_path):
    """kflow train on a latent folder (wavelet K-Flow on (4, 8, 8) latents), then kflow sample,
    which decodes with the encoding's VAE and keeps the latents too."""
    import numpy as np

    from kflow.cli.main import main

    encode_dataset(images, vae_dir, tmp_path / "lat", shard_size=16, log=lambda *_: None)
    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                str(ROOT / "configs" / "digits_tiny.yaml"),
                "data.name=latents",
                f"data.root={tmp_path / 'lat'}",
                "data.image_size=null",
                "transform.name=wavelet",
                "transform.wavelet=haar",
                "transform.num_bands=2",
                "train.steps=3",
                "train.ckpt_every=3",
                "sample.steps=2",
                "sample.num_grid=4",
                f"out_dir={run}",
            ]
        )
        == 0
    )
    assert (run / "samples" / "final.png").exists()
    assert (
        main(
            [
                "sample",
                str(run),
                "--n",
                "5",
                "--steps",
                "2",
                "--batch-size",
                "3",
                "--device",
                "cpu",
                "--out",
                str(tmp_path / "s"),
            ]
        )
        == 0
    )
    with np.load(tmp_path / "s" / "samples.npz", allow_pickle=False) as f:
        assert f["x"].shape == (5, 1, 16, 16) and f["x"].dtype == np.uint8
        assert f["z"].shape == (5, 4, 8, 8) and np.isfinite(f["z"]).all()
        z = torch.from_numpy(f["z"])
        x = f["x"]
    # the images are exactly the decoded latents
    dec = LatentDecoder(tmp_path / "lat")(z)
    assert np.abs(((dec + 1) * 127.5).round().numpy() - x).max() <= 1


def test_decompositions_on_latents(vae_dir, images, tmp_path):
    """PCA over the flattened latent (C*h*w = 256 here; (4, 32, 32) = 4096 is still a full
    covariance), Fourier and wavelet per channel: orthonormal and exact in float64 on real latents."""
    from kflow import FourierTransform, PCATransform, WaveletTransform

    encode_dataset(images, vae_dir, tmp_path / "lat", shard_size=64, log=lambda *_: None)
    z = load_latents(tmp_path / "lat").x.double()  # (40, 4, 8, 8)
    for T in (
        PCATransform.fit(z, num_bands=2),
        FourierTransform(z.shape[1:], num_bands=2),
        WaveletTransform(z.shape[1:], "haar", num_bands=2),
    ):
        c = T.analyze(z)
        torch.testing.assert_close(T.synthesize(c), z, rtol=0, atol=1e-12)
        I = T.analyze(torch.eye(T.dim, dtype=torch.float64).reshape(T.dim, *z.shape[1:]))
        torch.testing.assert_close(I @ I.T, torch.eye(T.dim, dtype=torch.float64), rtol=0, atol=1e-10)
    # PCA band 0 holds the top-variance directions of the latents
    P = PCATransform.fit(z, num_bands=2)
    var = P.analyze(z).var(0)
    assert var[P.bands == 0].min() >= var[P.bands == 1].max() - 1e-9
