"""The studio's work without the web: kept bands are exact, requests and uploads are validated."""

import base64
import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from kflow.studio.engine import Studio
from kflow.studio.progress import Progress
from kflow.studio.requests import EditRequest, GenerateRequest, ImageSource, RequestError, RestoreRequest
from kflow.studio.uploads import decode_upload


@pytest.fixture(scope="module")
def studio(run):
    return Studio(run)


def png(mode="L", size=(8, 8), value=0) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, value).save(buf, format="PNG")
    return buf.getvalue()


def upload(data: bytes) -> dict:
    return {"upload": "data:image/png;base64," + base64.b64encode(data).decode()}


def gen(studio, progress=None, keep=None, **kw):
    req = GenerateRequest.parse(kw, studio.path.num_bands)
    return studio.generate(req, progress or Progress(), kept=keep)


def test_kept_band_noise_is_bit_identical_and_the_rest_is_redrawn(studio):
    first = gen(studio, n=4, seed=1, label=-1)
    again = gen(studio, keep=first, n=4, seed=2, label=-1, keep_bands=[0], keep_from="j1")
    band = first.arrays["band_of_coefficient"]
    c1, c2 = first.arrays["noise_coefficients"], again.arrays["noise_coefficients"]
    assert c1.dtype == torch.float64
    assert torch.equal(c1[:, band == 0], c2[:, band == 0])
    assert (c1[:, band != 0] != c2[:, band != 0]).all()
    assert [p.title for p in again.panels][1] == "the batch bands [0] were kept from"
    assert torch.equal(again.panels[1].images, first.arrays["x"])
    # x_0 is the synthesis of those coefficients (float32 images)
    T = studio.path.transform
    torch.testing.assert_close(T.analyze(again.arrays["x_0"].double()), c2, atol=1e-5, rtol=0)


def test_generate_outputs_strip_labels_and_progress(studio):
    p = Progress()
    r = gen(studio, p, n=3, seed=0, steps=6, solver="heun", label=-1)
    assert p.done == p.total == 6 * 2 and p.fraction == 1.0
    assert r.arrays["x"].shape == (3, 1, 8, 8)
    B = studio.path.num_bands
    assert r.arrays["strip"].shape == (3, len(studio.path.boundaries()) + B, 1, 8, 8)  # x_k per boundary, bands
    assert r.arrays["y"].tolist() == [0, 1, 2]
    torch.testing.assert_close(r.arrays["strip"][:, B], r.arrays["x"])  # x_k at k = 1 is the sample
    torch.testing.assert_close(r.arrays["strip"][:, B + 1 :].sum(1), r.arrays["x"], atol=1e-5, rtol=0)  # bands
    assert r.png(0)[:8] == b"\x89PNG\r\n\x1a\n" and r.png(1)[:8] == b"\x89PNG\r\n\x1a\n"
    z = np.load(io.BytesIO(r.npz()), allow_pickle=False)
    assert z["x_uint8"].dtype == np.uint8 and json.loads(str(z["settings"]))["solver"] == "heun"


def test_same_seed_same_samples_and_condition_dropping_changes_them(studio):
    a = gen(studio, n=2, seed=5, label=3)
    b = gen(studio, n=2, seed=5, label=3)
    c = gen(studio, n=2, seed=5, label=3, keep_class_until=0.3)
    assert torch.equal(a.arrays["x"], b.arrays["x"])
    assert not torch.equal(a.arrays["x"], c.arrays["x"])


@pytest.mark.parametrize(
    "bad, field",
    [
        ({"n": 0}, "n="),
        ({"n": 65}, "n="),
        ({"n": 2.5}, "n="),
        ({"seed": -1}, "seed="),
        ({"steps": "many"}, "steps="),
        ({"solver": "dopri5"}, "solver="),
        ({"guidance": "nan"}, "guidance="),
        ({"keep_class_until": 2}, "keep_class_until="),
        ({"keep_bands": [7], "keep_from": "j1"}, "keep_bands"),
        ({"keep_bands": "0"}, "keep_bands"),
        ({"keep_bands": [0]}, "keep_from"),
        ({"label": True}, "label="),
    ],
)
def test_bad_generate_requests_name_the_field(bad, field):
    with pytest.raises(RequestError, match=field):
        GenerateRequest.parse(bad, 3)


def test_requests_the_run_cannot_do(studio, fm_run):
    with pytest.raises(RequestError, match="class 12 does not exist"):
        gen(studio, n=2, label=12)
    with pytest.raises(RequestError, match="need a class"):
        gen(studio, n=2, guidance=3)
    first = gen(studio, n=2)
    with pytest.raises(RequestError, match="same number of images"):
        gen(studio, keep=first, n=3, keep_bands=[0], keep_from="j1")
    with pytest.raises(RequestError, match="is gone"):
        gen(studio, keep=None, n=2, keep_bands=[0], keep_from="j404")
    fm = Studio(fm_run)
    with pytest.raises(RequestError, match="unconditional"):
        gen(fm, n=2, label=1)


def test_flow_matching_run_one_band(fm_run):
    fm = Studio(fm_run)
    f = fm.facts()
    assert f["num_bands"] == 1 and f["classes"] == [] and f["windows"] == [[0.0, 1.0]]
    a = gen(fm, n=2, seed=0)
    assert a.arrays["strip"].shape[1] == 3  # noise, the sample, its one band
    b = gen(fm, keep=a, n=2, seed=9, keep_bands=[0], keep_from="j1")  # all noise kept: same samples
    assert torch.equal(a.arrays["x"], b.arrays["x"])


def test_facts(studio, run):
    (run / "quality-euler-20-n100-seed0.json").write_text(json.dumps({"fd": 12.5, "nfe": 20, "n": 100}))
    f = studio.facts()
    assert f["num_bands"] == 3 and f["kind"] == "K-Flow, 3 bands"
    assert f["windows"] == [[round(a, 4) for a in w] for w in studio.path.windows().tolist()]
    assert f["classes"] == [str(i) for i in range(10)] and f["step"] == 3
    assert f["fd"] == [{"file": "quality-euler-20-n100-seed0.json", "fd": 12.5, "nfe": 20, "n": 100}]
    assert f["test_images"] > 0 and f["can_edit"] and f["can_restore"]


@pytest.mark.parametrize(
    "data, msg",
    [
        (b"hello", "not an image"),
        (b"", "not an image"),
        (png()[:30], "not an image"),  # a truncated PNG
        (png("RGB"), "RGB \\(3 channels\\), this run takes grayscale"),
        (png("RGBA"), "RGB \\(3 channels\\)"),
        (png("L", (28, 28)), "28x28 pixels, this needs 8x8"),
    ],
)
def test_bad_uploads_are_one_line(data, msg):
    with pytest.raises(RequestError, match=msg):
        decode_upload(data, (1, 8, 8))


def test_uploads_map_by_the_dtype_rule():
    a = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    x = decode_upload(buf.getvalue(), (1, 8, 8))
    assert x.shape == (1, 1, 8, 8)
    torch.testing.assert_close(x[0, 0], torch.from_numpy(a).float() / 127.5 - 1)
    assert decode_upload(png("LA", value=(7, 0)), (1, 8, 8)).shape == (1, 1, 8, 8)  # alpha dropped
    assert decode_upload(png("RGB"), (3, 8, 8)).shape == (1, 3, 8, 8)


def test_edit_keeps_bands_of_a_test_image(studio):
    req = EditRequest.parse({"image": {"test_index": 0}, "keep_bands": [0, 1], "n": 2, "steps": 4}, 3)
    p = Progress()
    r = studio.edit(req, p)
    assert p.done == p.total == 3 * 4 * 4  # invert, regenerate, reconstruct; rk4
    assert r.arrays["x"].shape == (2, 1, 8, 8) and "reconstruction PSNR" in r.message
    T = studio.path.transform
    keep = T.bands <= 1
    c0, c1 = T.analyze(r.arrays["x_0"]), T.analyze(r.arrays["x_0_edited"])
    torch.testing.assert_close(c1[:, keep], c0[:, keep], atol=1e-5, rtol=0)
    assert (c1[:, ~keep] - c0[:, ~keep]).abs().max() > 0.1


def test_edit_with_a_second_image_swaps_bands(studio):
    req = EditRequest.parse(
        {"image": {"test_index": 0}, "donor": upload(png(value=200)), "keep_bands": [0], "steps": 3}, 3
    )
    r = studio.edit(req, Progress())
    assert r.arrays["x"].shape == (1, 1, 8, 8) and "donor" in r.arrays
    # band 0 of the edited noise is the image's, every other band the second image's recovered noise
    from kflow.steering import invert

    T = studio.path.transform
    donor_x0 = invert(studio.run.model, studio.path, r.arrays["donor"], steps=3, solver="rk4")
    c_edit, c_img, c_donor = (T.analyze(a) for a in (r.arrays["x_0_edited"], r.arrays["x_0"], donor_x0))
    band0 = T.bands == 0
    torch.testing.assert_close(c_edit[:, band0], c_img[:, band0], rtol=0, atol=1e-5)
    torch.testing.assert_close(c_edit[:, ~band0], c_donor[:, ~band0], rtol=0, atol=1e-5)
    assert (c_donor[:, ~band0] - c_img[:, ~band0]).abs().max() > 0.1  # the two really differ there
    with pytest.raises(RequestError, match="keep at least one band"):
        EditRequest.parse({"image": {"test_index": 0}, "keep_bands": []}, 3)
    with pytest.raises(RequestError, match="upload an image or pick a test image"):
        EditRequest.parse({"keep_bands": [0]}, 3)
    with pytest.raises(RequestError, match="test image 99999 does not exist"):
        studio.edit(EditRequest.parse({"image": {"test_index": 99999}}, 3), Progress())


def test_restore_with_psnr_against_the_original(studio):
    req = RestoreRequest.parse({"image": {"test_index": 1}, "task": "sr_box", "factor": 2, "n": 3, "steps": 4})
    r = studio.restore(req, Progress())
    assert r.arrays["x"].shape == (3, 1, 8, 8) and r.arrays["psnr"].shape == (3,)
    assert "PSNR" in r.message and "classical baseline" in r.message
    # the restorations agree with the observation (noise-free: exactly), the baseline is bicubic's
    from kflow.metrics.psnr import psnr
    from kflow.steering import baseline, make_degradation

    A = make_degradation("sr_box", (1, 8, 8), factor=2)
    clean, y = r.arrays["original"], r.arrays["observation"]
    torch.testing.assert_close(A(r.arrays["x"]), y.expand(3, -1, -1, -1), rtol=0, atol=1e-4)
    torch.testing.assert_close(r.arrays["baseline"], baseline(y, A))
    assert float(r.arrays["psnr_baseline"]) == pytest.approx(psnr(baseline(y, A), clean).item())
    torch.testing.assert_close(r.arrays["psnr"], psnr(r.arrays["x"].clamp(-1, 1), clean.expand(3, -1, -1, -1)))
    # an observation given as is: a 4x4 image for x2 super-resolution of 8x8; no PSNR without an original
    obs = RestoreRequest.parse({"image": upload(png(size=(4, 4))), "observed": True, "n": 1, "steps": 3})
    r = studio.restore(obs, Progress())
    assert "psnr" not in r.arrays and r.arrays["observation"].shape == (1, 1, 4, 4)
    with pytest.raises(RequestError, match="8x8 pixels, this needs 4x4"):
        bad = RestoreRequest.parse({"image": upload(png()), "observed": True, "n": 1, "steps": 3})
        studio.restore(bad, Progress())
    with pytest.raises(RequestError, match="inpainting takes the clean image"):
        RestoreRequest.parse({"image": {"test_index": 1}, "task": "inpaint", "observed": True})
    with pytest.raises(RequestError, match="cannot be downsampled by 3"):
        studio.restore(RestoreRequest.parse({"image": {"test_index": 1}, "factor": 3}), Progress())


def test_image_source_refuses_garbage():
    with pytest.raises(RequestError, match="base64"):
        ImageSource.parse({"upload": "data:image/png;base64,@@@"}, "image")


def test_latent_run_generates_decoded_images_and_refuses_uploads(tmp_path):
    """A wavelet K-Flow on (4, 8, 8) latents of a tiny random VAE: the page shows decoded 16x16
    images, the .npz keeps the latents, and editing/restoring uploads says it needs a pixel run."""
    pytest.importorskip("diffusers")
    import sys
    from pathlib import Path

    from kflow.cli.main import main
    from kflow.data import load_dataset
    from kflow.data.latents import encode_dataset

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
    from test_latents import make_vae

    images = load_dataset("digits", "train", image_size=16, limit=24)
    encode_dataset(images, make_vae(tmp_path / "vae"), tmp_path / "lat", shard_size=24, log=lambda *_: None)
    run = tmp_path / "run"
    over = ["data.name=latents", f"data.root={tmp_path / 'lat'}", "data.image_size=null", "transform.name=wavelet"]
    over += ["transform.wavelet=haar", "transform.num_bands=2", "train.steps=2", "train.ckpt_every=2"]
    assert main(["train", str(Path(__file__).resolve().parents[2] / "configs" / "digits_tiny.yaml"), *over,
                 "train.sample_every=0", f"out_dir={run}"]) == 0  # fmt: skip
    s = Studio(run)
    f = s.facts()
    assert f["latent"] and not f["can_edit"] and f["shape"] == [4, 8, 8] and f["test_images"] == 0
    a = gen(s, n=3, seed=0, steps=4, label=-1)
    b = gen(s, keep=a, n=3, seed=1, steps=4, label=-1, keep_bands=[0], keep_from="j1")
    assert a.arrays["x"].shape == (3, 1, 16, 16) and a.arrays["z"].shape == (3, 4, 8, 8)
    band = a.arrays["band_of_coefficient"]
    assert torch.equal(a.arrays["noise_coefficients"][:, band == 0], b.arrays["noise_coefficients"][:, band == 0])
    with pytest.raises(RequestError, match="pixel runs"):
        s.edit(EditRequest.parse({"image": {"test_index": 0}}, 2), Progress())
