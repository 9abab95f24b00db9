"""Band-localized compute in float64: the stage image and back, the conditional target at stage
resolution, exact sampling through the staged wrapper, bit-for-bit FM, and the refusals."""

import dataclasses

import pytest
import torch
from torch import Tensor, nn

from kflow.config import Config, ConfigError
from kflow.models import UNet, UNetConfig
from kflow.models.staged import StagedModel, _thread_plan
from kflow.path import KFlowPath
from kflow.recipe import make_model, make_path, make_transform
from kflow.sampling import sample
from kflow.transforms import FourierTransform, IdentityTransform, PCATransform, WaveletTransform

SHAPE = (2, 16, 16)


def f64(*shape):
    return torch.randn(*shape, dtype=torch.float64)


@pytest.mark.parametrize("wavelet, bands", [("haar", 3), ("db6", 2), ("db2", 4)])
def test_stage_image_and_back_is_the_identity_on_the_started_bands(wavelet, bands):
    T = WaveletTransform(SHAPE, wavelet, levels=3, num_bands=bands)
    x = f64(5, *SHAPE)
    for s in range(bands):
        keep = (torch.arange(bands) <= s).double()
        z = T.to_stage(x, s)
        assert tuple(z.shape[1:]) == T.stage_shape(s) == (2, 16 >> (bands - 1 - s), 16 >> (bands - 1 - s))
        torch.testing.assert_close(T.from_stage(z, s), T.filter(x, keep), rtol=0, atol=1e-12)
        w = f64(3, *T.stage_shape(s))
        torch.testing.assert_close(T.to_stage(T.from_stage(w, s), s), w, rtol=0, atol=1e-12)
        # orthonormal: the stage image has the norm of the started bands' coefficients
        c = T.analyze(x)[:, T.bands <= s]
        torch.testing.assert_close(z.flatten(1).norm(dim=1), c.norm(dim=1), rtol=1e-12, atol=0)


@pytest.mark.parametrize("shape, bands", [((2, 16, 16), 3), ((1, 32, 32), 2), ((3, 16, 24), 2)])
def test_fourier_stage_is_a_centred_crop_of_the_spectrum(shape, bands):
    """The stage image of Fourier bands holds the started frequencies on a smaller grid: back to full
    size it is exactly the started bands; on the started subspace it is an isometry; its spectrum is
    numpy's centred crop of the full one (the small grid's Nyquist row and column empty); a stage
    velocity comes back with its corner frequencies (later bands) removed."""
    T = FourierTransform(shape, num_bands=bands)
    x = f64(4, *shape)
    for s in range(bands):
        keep = (torch.arange(bands) <= s).double()
        z = T.to_stage(x, s)
        assert tuple(z.shape[1:]) == T.stage_shape(s)
        torch.testing.assert_close(T.from_stage(z, s), T.filter(x, keep), rtol=0, atol=1e-12)
        started = T.filter(x, keep)
        c = T.analyze(x)[:, T.bands <= s]
        torch.testing.assert_close(T.to_stage(started, s).flatten(1).norm(dim=1), c.norm(dim=1), rtol=1e-12, atol=0)
        w = f64(3, *T.stage_shape(s))
        once = T.to_stage(T.from_stage(w, s), s)
        torch.testing.assert_close(T.to_stage(T.from_stage(once, s), s), once, rtol=0, atol=1e-12)  # a projection
        h, wd = T.stage_shape(s)[1:]
        if (h, wd) == shape[1:]:
            continue
        import numpy as np

        X = np.fft.fftshift(np.fft.fft2(x[0, 0].numpy(), norm="ortho"))
        H, W = shape[1:]
        crop = X[H // 2 - h // 2 : H // 2 + h // 2, W // 2 - wd // 2 : W // 2 + wd // 2].copy()
        crop[0, :] = 0  # the small grid's Nyquist row and column
        crop[:, 0] = 0
        want = np.fft.ifft2(np.fft.ifftshift(crop), norm="ortho").real
        np.testing.assert_allclose(z[0, 0].numpy(), want, atol=1e-12)
    assert T.stage_shape(0)[1:] == (shape[1] >> (bands - 1), shape[2] >> (bands - 1))  # dyadic edges: halves


def test_stage_zero_of_two_db6_bands_on_32x32_is_the_16x16_approximation():
    import pywt

    T = WaveletTransform((1, 32, 32), "db6", num_bands=2)
    x = f64(1, 1, 32, 32)
    ref = pywt.wavedec2(x[0, 0].numpy(), "db6", mode="periodization", level=1)[0]
    torch.testing.assert_close(T.to_stage(x, 0)[0, 0], torch.from_numpy(ref), rtol=0, atol=1e-12)


def staggered_path(bands=3, bump="linear", transform="wavelet"):
    if transform == "fourier":
        T = FourierTransform(SHAPE, num_bands=bands)
    else:
        T = WaveletTransform(SHAPE, "haar", levels=3, num_bands=bands)
    starts = [i / bands for i in range(bands)]
    return KFlowPath(T, bump=bump, windows=[[s, 1.0] for s in starts])


@pytest.mark.parametrize("transform", ["wavelet", "fourier"])
@pytest.mark.parametrize("bump", ["linear", "smoothstep"])
def test_the_target_at_stage_resolution_lifted_is_the_full_target(bump, transform):
    path = staggered_path(bump=bump, transform=transform)
    T = path.transform
    x_0, x_1 = f64(64, *SHAPE), f64(64, *SHAPE)
    k = torch.rand(64, dtype=torch.float64)
    full = path.sample(x_0, x_1, k)
    stage = path.stage(k)
    assert set(stage.tolist()) == {0, 1, 2}
    for s in range(3):
        i = stage == s
        lifted = T.from_stage(T.to_stage(full.dx_k[i], s), s)
        torch.testing.assert_close(lifted, full.dx_k[i], rtol=0, atol=1e-12)  # the target lives on bands 0..s
        later = (torch.arange(3) > s).double()
        torch.testing.assert_close(T.filter(full.x_k[i], later), T.filter(x_0[i], later), rtol=0, atol=1e-12)


class ExactStageVelocity(nn.Module):
    """A backbone that answers, at whatever stage resolution it is called, the conditional velocity of
    one (x_0, x_1) pair seen at that resolution; the k embedding it never needs."""

    def __init__(self, path, x_0, x_1):
        super().__init__()
        self.path, self.x_0, self.x_1 = path, x_0, x_1
        self.cfg = UNetConfig(channel_mult=[1])
        self.calls: list[tuple] = []

    def forward(self, z, k, y=None):
        T = self.path.transform
        s = [T.stage_shape(i) for i in range(T.num_bands)].index(tuple(z.shape[1:]))
        self.calls.append(tuple(z.shape[1:]))
        return T.to_stage(self.path.sample(self.x_0, self.x_1, k).dx_k, s)


@pytest.mark.parametrize("transform", ["wavelet", "fourier"])
def test_the_sampler_driven_by_the_exact_velocity_at_stage_resolutions_lands_on_x1(transform):
    path = staggered_path(transform=transform)
    x_0, x_1 = f64(4, *SHAPE), f64(4, *SHAPE)
    backbone = ExactStageVelocity(path, x_0, x_1)
    model = StagedModel(backbone, path)
    out = sample(model, path, 4, steps=12, x_0=x_0, dtype=torch.float64, device="cpu")
    torch.testing.assert_close(out.x, x_1, rtol=0, atol=1e-10)
    assert {(2, 4, 4), (2, 8, 8), (2, 16, 16)} == set(backbone.calls)  # every stage ran at its own size


class Doubler(nn.Module):
    """A backbone that doubles its input and records the sizes it was called at."""

    def __init__(self):
        super().__init__()
        self.cfg = UNetConfig(channel_mult=[1])
        self.calls: list[tuple] = []

    def forward(self, z, k, y=None):
        self.calls.append(tuple(z.shape))
        return 2 * z


def test_a_mixed_batch_is_grouped_by_stage():
    path = staggered_path()
    x = f64(6, *SHAPE)
    k = torch.tensor([0.1, 0.5, 0.9, 0.2, 0.6, 0.95], dtype=torch.float64)
    backbone = Doubler()
    v = StagedModel(backbone, path)(x, k)
    started = path.started(k).double()  # (N, B): each sample keeps its own started bands
    torch.testing.assert_close(v, 2 * path.transform.filter(x, started), rtol=0, atol=1e-12)
    assert sorted(backbone.calls) == [(2, 2, 4, 4), (2, 2, 8, 8), (2, 2, 16, 16)]  # one call per stage


def test_own_weights_run_each_stage_on_its_own_backbone():
    """stage_weights='own': stage s's samples go to backbone s alone, at stage s's size; the exact
    velocity through separate backbones still lands on x_1."""
    path = staggered_path()
    x = f64(6, *SHAPE)
    k = torch.tensor([0.1, 0.5, 0.9, 0.2, 0.6, 0.95], dtype=torch.float64)
    nets = [Doubler(), Doubler(), Doubler()]
    v = StagedModel(nets[0], path, own=nets)(x, k)
    torch.testing.assert_close(v, 2 * path.transform.filter(x, path.started(k).double()), rtol=0, atol=1e-12)
    assert [n.calls for n in nets] == [[(2, 2, 4, 4)], [(2, 2, 8, 8)], [(2, 2, 16, 16)]]
    x_0, x_1 = f64(4, *SHAPE), f64(4, *SHAPE)
    exact = [ExactStageVelocity(path, x_0, x_1) for _ in range(3)]
    out = sample(StagedModel(exact[0], path, own=exact), path, 4, steps=12, x_0=x_0, dtype=torch.float64, device="cpu")
    torch.testing.assert_close(out.x, x_1, rtol=0, atol=1e-10)
    assert [set(e.calls) for e in exact] == [{(2, 4, 4)}, {(2, 8, 8)}, {(2, 16, 16)}]
    with pytest.raises(ValueError, match="2 backbones for 3 stages"):
        StagedModel(nets[0], path, own=nets[:2])


def test_coarse_weights_give_stage_0_its_own_backbone_and_share_one_after_it():
    """stage_weights='coarse' (groups [0, 1, 1]): stage 0 on the first backbone, stages 1 and 2 on the
    second at their own sizes; the exact velocity through it still lands on x_1 in float64."""
    path = staggered_path()
    x = f64(6, *SHAPE)
    k = torch.tensor([0.1, 0.5, 0.9, 0.2, 0.6, 0.95], dtype=torch.float64)
    nets = [Doubler(), Doubler()]
    v = StagedModel(nets[0], path, own=nets, groups=[0, 1, 1])(x, k)
    torch.testing.assert_close(v, 2 * path.transform.filter(x, path.started(k).double()), rtol=0, atol=1e-12)
    assert nets[0].calls == [(2, 2, 4, 4)] and sorted(nets[1].calls) == [(2, 2, 8, 8), (2, 2, 16, 16)]
    x_0, x_1 = f64(4, *SHAPE), f64(4, *SHAPE)
    exact = [ExactStageVelocity(path, x_0, x_1) for _ in range(2)]
    model = StagedModel(exact[0], path, own=exact, groups=[0, 1, 1])
    out = sample(model, path, 4, steps=12, x_0=x_0, dtype=torch.float64, device="cpu")
    torch.testing.assert_close(out.x, x_1, rtol=0, atol=1e-10)
    assert [set(e.calls) for e in exact] == [{(2, 4, 4)}, {(2, 8, 8), (2, 16, 16)}]
    with pytest.raises(ValueError, match="stage groups"):
        StagedModel(nets[0], path, own=nets, groups=[0, 1, 2])


def test_coarse_resolution_runs_stage_0_small_and_the_finer_stages_in_one_full_size_call():
    """full_from=1 (model.resolution=coarse): stage 0 at its 4x4 size, stages 1 and 2 on one backbone
    at 16x16 in one call, each output kept on its own started bands; the exact velocity through it
    lands on x_1 in float64."""
    path = staggered_path()
    x = f64(6, *SHAPE)
    k = torch.tensor([0.1, 0.5, 0.9, 0.2, 0.6, 0.95], dtype=torch.float64)
    nets = [Doubler(), Doubler()]
    v = StagedModel(nets[0], path, own=nets, groups=[0, 1, 1], full_from=1)(x, k)
    torch.testing.assert_close(v, 2 * path.transform.filter(x, path.started(k).double()), rtol=0, atol=1e-12)
    assert nets[0].calls == [(2, 2, 4, 4)] and nets[1].calls == [(4, 2, 16, 16)]
    x_0, x_1 = f64(4, *SHAPE), f64(4, *SHAPE)
    exact = [ExactStageVelocity(path, x_0, x_1) for _ in range(2)]
    model = StagedModel(exact[0], path, own=exact, groups=[0, 1, 1], full_from=1)
    out = sample(model, path, 4, steps=12, x_0=x_0, dtype=torch.float64, device="cpu")
    torch.testing.assert_close(out.x, x_1, rtol=0, atol=1e-10)
    assert [set(e.calls) for e in exact] == [{(2, 4, 4)}, {(2, 16, 16)}]
    shared = Doubler()  # one backbone everywhere: stage 0 small, the rest at full size
    StagedModel(shared, path, full_from=1)(x, k)
    assert sorted(shared.calls) == [(2, 2, 4, 4), (4, 2, 16, 16)]
    with pytest.raises(ValueError, match="full_from=0"):
        StagedModel(shared, path, full_from=0)


def test_coarse_resolution_from_the_config_is_exact_where_bands_have_not_started():
    """model.resolution=coarse: a real UNet's output is zero on the bands not started at k."""
    cfg = unet_cfg(resolution="coarse", stage_weights="coarse", stage_channels=[16, 8, 8])
    T = make_transform(cfg, (1, 8, 8))
    path = make_path(cfg, T)
    model = make_model(cfg, (1, 8, 8), 0, path).double()
    with torch.no_grad():  # the UNet's last layer starts at zero: give it an output to check
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    assert [net.cfg.channels for net in model.backbones] == [16, 8] and model.full_from == 1
    x, k = torch.randn(6, 1, 8, 8, dtype=torch.float64), torch.tensor([0.1, 0.5, 0.9, 0.2, 0.6, 0.95]).double()
    v = model(x, k)
    not_started = 1 - path.started(k).double()
    assert T.filter(v, not_started).abs().max() < 1e-12 and v.abs().max() > 1e-3


def test_coarse_weights_from_the_config():
    cfg = unet_cfg(resolution="stage", stage_weights="coarse")
    T = make_transform(cfg, (1, 8, 8))
    model = make_model(cfg, (1, 8, 8), 0, make_path(cfg, T))
    shared = make_model(unet_cfg(resolution="stage"), (1, 8, 8), 0, make_path(cfg, T))
    n_coarse, n_shared = (sum(p.numel() for p in m.parameters()) for m in (model, shared))
    assert len(model.backbones) == 2 and model.groups == [0, 1, 1] and n_coarse == 2 * n_shared
    assert {key.split(".")[1] for key in model.state_dict()} == {"0", "1"}  # no tensor saved twice
    wide = make_model(
        unet_cfg(resolution="stage", stage_weights="coarse", stage_channels=[16, 8, 8]), (1, 8, 8), 0, make_path(cfg, T)
    )
    assert [net.cfg.channels for net in wide.backbones] == [16, 8]
    x, k = torch.randn(3, 1, 8, 8), torch.tensor([0.1, 0.5, 0.9])
    assert wide(x, k).shape == x.shape
    with pytest.raises(ConfigError, match="share a backbone"):
        make_model(
            unet_cfg(resolution="stage", stage_weights="coarse", stage_channels=[16, 8, 4]),
            (1, 8, 8),
            0,
            make_path(cfg, T),
        )


def test_own_weights_from_the_config_are_independent_backbones():
    cfg = unet_cfg(resolution="stage", stage_weights="own")
    T = make_transform(cfg, (1, 8, 8))
    model = make_model(cfg, (1, 8, 8), 0, make_path(cfg, T))
    a, b = (list(n.parameters()) for n in model.backbones[:2])
    assert len(model.backbones) == 3 and len(a) == len(b) and not torch.equal(a[0], b[0])
    shared = make_model(unet_cfg(resolution="stage"), (1, 8, 8), 0, make_path(cfg, T))
    n_own, n_shared = (sum(p.numel() for p in m.parameters()) for m in (model, shared))
    assert n_own == 3 * n_shared and all(key.startswith("backbone.") for key in shared.state_dict())


def test_stage_channels_size_each_stages_own_unet():
    cfg = unet_cfg(resolution="stage", stage_weights="own", stage_channels=[16, 8, 4])
    T = make_transform(cfg, (1, 8, 8))
    model = make_model(cfg, (1, 8, 8), 0, make_path(cfg, T))
    assert [net.cfg.channels for net in model.backbones] == [16, 8, 4]
    x, k = torch.randn(3, 1, 8, 8), torch.tensor([0.1, 0.5, 0.9])
    assert model(x, k).shape == x.shape
    with pytest.raises(ConfigError, match="2 entries for 3 stages"):
        bad = unet_cfg(resolution="stage", stage_weights="own", stage_channels=[8, 8])
        make_model(bad, (1, 8, 8), 0, make_path(cfg, T))
    from kflow.config import load_config

    with pytest.raises(ConfigError, match="set model.stage_weights=own"):
        load_config(None, ["model.resolution=stage", "model.stage_channels=[8,8,8]"])
    with pytest.raises(ConfigError, match="positive whole numbers"):
        load_config(None, ["model.resolution=stage", "model.stage_weights=own", "model.stage_channels=[8,0,8]"])


@pytest.mark.parametrize(
    "option",
    [
        "model.stage_weights=own",
        "train.stage_batches=one",
        "train.stage_share=[0.5,0.3,0.2]",
        "model.stage_channels=[8]",
        "train.stage_calls=threads",
    ],
)
def test_stage_options_need_a_staged_model(option):
    from kflow.config import load_config

    with pytest.raises(ConfigError, match=r"concerns staged models: set model.resolution=stage") as e:
        load_config(None, [option])
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    "options",
    [
        ["model.stage_weights=own"],
        ["train.stage_batches=one"],
        ["model.stage_weights=coarse", "transform.num_bands=3", "path.windows=[[0,1],[0.3,1],[0.6,1]]"],
        ["model.resolution=coarse", "model.stage_weights=coarse", "train.stage_batches=stratified"],
        ["model.stage_entry=level", "train.stage_batches=stratified"],
        ["model.stage_weights=own", "train.stage_calls=threads"],
    ],
)
def test_stage_options_resume_bit_exact(tmp_path, options):
    from pathlib import Path

    from kflow.config import load_config
    from kflow.training import Trainer

    tiny = Path(__file__).resolve().parents[2] / "configs" / "digits_tiny.yaml"
    over = ["model.resolution=stage", "path.windows=[[0,1],[0.5,1]]", "transform.num_bands=2", *options]
    over += ["train.steps=8", "train.ckpt_every=4", "train.device=cpu", "train.log_every=100"]
    full = Trainer(load_config(tiny, [*over, f"out_dir={tmp_path / 'a'}"]))
    full.fit()
    part = Trainer(load_config(tiny, [*over, f"out_dir={tmp_path / 'b'}"]))
    part.fit(until=6)
    resumed = Trainer(load_config(tiny, [*over, f"out_dir={tmp_path / 'b'}"]), resume=True)
    assert resumed.step == 4
    resumed.fit()
    for (n, p), q in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(p, q), n
    assert {**full.cfg.to_dict(), "out_dir": None} == {**resumed.cfg.to_dict(), "out_dir": None}


def unet_cfg(**model):
    cfg = Config()
    cfg.transform = dataclasses.replace(cfg.transform, name="wavelet", wavelet="haar", levels=2, num_bands=3)
    cfg.path = dataclasses.replace(cfg.path, overlap=0.5)
    cfg.model = dataclasses.replace(cfg.model, k_embedding="window", **model)
    cfg.model.unet = dataclasses.replace(cfg.model.unet, channels=8, channel_mult=[1, 2], attention_resolutions=[])
    return cfg


def test_one_band_and_the_switch_off_are_the_plain_model_bit_for_bit():
    for cfg, transform in [(unet_cfg(resolution="stage"), "identity"), (unet_cfg(), "wavelet")]:
        cfg.transform = dataclasses.replace(cfg.transform, name=transform)
        T = make_transform(cfg, (1, 8, 8))
        torch.manual_seed(3)
        model = make_model(cfg, (1, 8, 8), 0, make_path(cfg, T))
        assert isinstance(model, UNet)
        plain = cfg.model.unet
        torch.manual_seed(3)
        ref = UNet(dataclasses.replace(plain, in_channels=1, image_size=8, band_windows=model.cfg.band_windows))
        x, k = torch.randn(3, 1, 8, 8), torch.rand(3)
        assert torch.equal(model(x, k), ref(x, k))


@pytest.mark.parametrize("transform", ["wavelet", "fourier"])
def test_the_staged_model_trains_and_resumes_through_the_cli(tmp_path, transform):
    from kflow.cli.main import main
    from kflow.runs import load_run

    out = tmp_path / "run"
    args = ["model.resolution=stage", "path.overlap=0.5", "model.k_embedding=window", f"out_dir={out}"]
    args.append(f"transform.name={transform}")
    from pathlib import Path

    cfg_file = str(Path(__file__).resolve().parents[2] / "configs" / "digits_tiny.yaml")
    assert main(["train", cfg_file, *args, "train.steps=4", "train.ckpt_every=2"]) == 0
    run = load_run(out)
    assert isinstance(run.model, StagedModel) and run.cfg.model.resolution == "stage"
    assert main(["sample", str(out), "--n", "4", "--steps", "6", "--out", str(tmp_path / "s")]) == 0


def test_a_staged_dit_runs_each_stage_on_its_own_token_grid():
    """DiT at stage resolution: 4x4 / 16 / 64 tokens (patch 2 on 4x4, 8x8, 16x16 stage images), the
    full grid's positions bit for bit the plain DiT's, a coarse token at the centre of the full-grid
    tokens it covers; the exact velocity through a staged DiT-shaped wrapper lands on x_1."""
    from kflow.models import DiT, DiTConfig

    path = staggered_path()
    dit = DiT(DiTConfig(in_channels=2, image_size=16, patch_size=2, size="XS"))
    model = StagedModel(dit, path)
    seen = []
    dit.patch.register_forward_hook(lambda m, i, o: seen.append(o.shape[-2] * o.shape[-1]))
    x, k = f64(3, *SHAPE).float(), torch.tensor([0.1, 0.5, 0.9])
    out = model(x, k)
    assert out.shape == x.shape and sorted(seen) == [4, 16, 64]
    assert dit._pos_for(8, 8) is dit.pos  # the full grid: the plain DiT's positions, bit for bit
    # a 2x2 grid of 8x8 full-grid tokens: token (0, 0) covers full-grid rows and columns 0..3, centre 1.5
    q = 192 // 4
    omega = 1.0 / 10000 ** (torch.arange(q, dtype=torch.float64) / q)
    coarse = dit._pos_for(2, 2)[0]  # (4, 192): [sin y, cos y, sin x, cos x]
    torch.testing.assert_close(coarse[0, :q], (1.5 * omega).sin().float())
    torch.testing.assert_close(coarse[3, 2 * q : 3 * q], (5.5 * omega).sin().float())
    out64 = StagedModel(dit.double(), path)(f64(2, *SHAPE), torch.tensor([0.2, 0.95], dtype=torch.float64))
    assert out64.dtype == torch.float64 and torch.isfinite(out64).all()
    with pytest.raises(ValueError, match="got a 9x9 grid"):
        dit._pos_for(9, 9)


@pytest.mark.parametrize(
    "change, msg",
    [
        (dict(transform="pca"), "span no lower-resolution image"),
        (dict(order="high_to_low"), "start coarse to fine"),
        (dict(model="dit"), "not divisible by the DiT's patch size 4"),
        (dict(channel_mult=[1, 2, 2, 2]), "halves it 3 times"),
    ],
)
def test_bad_combinations_are_refused_in_one_line(change, msg):
    cfg = unet_cfg(resolution="stage")
    if "transform" in change:
        cfg.transform = dataclasses.replace(cfg.transform, name=change["transform"], num_bands=3)
    if "order" in change:
        cfg.path = dataclasses.replace(cfg.path, order=change["order"])
    if "model" in change:
        cfg.model = dataclasses.replace(cfg.model, name=change["model"])
        cfg.model.dit = dataclasses.replace(cfg.model.dit, size="XS", patch_size=4)  # stage 0 is 2x2
    if "channel_mult" in change:
        cfg.model.unet = dataclasses.replace(cfg.model.unet, channel_mult=change["channel_mult"])
    data = torch.randn(64, 1, 8, 8)
    T = make_transform(cfg, (1, 8, 8), data)
    with pytest.raises(ConfigError, match=msg) as e:
        make_model(cfg, (1, 8, 8), 0, make_path(cfg, T, data))
    assert "\n" not in str(e.value)


def test_transforms_without_stage_images_say_so():
    from kflow.transforms.graph import GraphTransform

    W = torch.ones(5, 5, dtype=torch.float64) - torch.eye(5, dtype=torch.float64)
    for T in [PCATransform.fit(f64(40, *SHAPE), num_bands=2), GraphTransform(W, features=2, num_bands=2)]:
        with pytest.raises(ValueError, match="no lower-resolution image"):
            T.to_stage(f64(1, *T.shape), 0)
    I = IdentityTransform(SHAPE)
    x = f64(2, *SHAPE)
    assert I.to_stage(x, 0) is x and I.stage_shape(0) == SHAPE


def test_a_staged_dit_trains_resumes_and_samples_through_the_cli(tmp_path):
    from pathlib import Path

    from kflow.cli.main import main
    from kflow.runs import load_run

    out = tmp_path / "run"
    cfg_file = str(Path(__file__).resolve().parents[2] / "configs" / "digits_tiny.yaml")
    args = ["model.name=dit", "model.dit.size=XS", "model.dit.patch_size=2", "model.resolution=stage"]
    args += ["path.windows=[[0,1],[0.34,1],[0.67,1]]", "model.k_embedding=window", f"out_dir={out}"]
    assert main(["train", cfg_file, *args, "train.steps=4", "train.ckpt_every=2"]) == 0
    assert main(["train", cfg_file, *args, "train.steps=6", "train.ckpt_every=2", "--resume"]) == 0
    run = load_run(out)
    assert isinstance(run.model, StagedModel) and run.cfg.model.name == "dit" and run.step == 6
    assert main(["sample", str(out), "--n", "4", "--steps", "6", "--out", str(tmp_path / "s")]) == 0


class ExactLevelVelocity(ExactStageVelocity):
    """The exact velocity through a backbone that takes smaller images at lower levels
    (model.stage_entry=level); it records each call's size and level."""

    def __init__(self, path, x_0, x_1, levels):
        super().__init__(path, x_0, x_1)
        self.cfg = UNetConfig(channel_mult=[1, 2, 2], entry_levels=levels)
        self.entered: list[tuple] = []

    def forward(self, z, k, y=None, level=0):
        self.entered.append((z.shape[-1], level))
        return super().forward(z, k, y)


@pytest.mark.parametrize("groups, levels", [(None, [2, 1, 0]), ([0, 1, 1], [0, 1, 0])])
def test_level_entry_lands_on_x1_with_each_stage_at_the_level_of_its_size(groups, levels):
    """entry='level': a backbone shared by stages of several sizes takes each at the level of its size
    (the largest at level 0); the exact velocity through it still lands on x_1 in float64."""
    path = staggered_path()
    x_0, x_1 = f64(4, *SHAPE), f64(4, *SHAPE)
    nets = [ExactLevelVelocity(path, x_0, x_1, [1, 2]) for _ in range(1 if groups is None else 2)]
    model = StagedModel(nets[0], path, None if groups is None else nets, groups, entry="level")
    assert model.levels == levels
    out = sample(model, path, 4, steps=12, x_0=x_0, dtype=torch.float64, device="cpu")
    torch.testing.assert_close(out.x, x_1, rtol=0, atol=1e-10)
    seen = set().union(*(set(n.entered) for n in nets))
    assert seen == {(16 >> (2 - s), lv) for s, lv in enumerate(levels)}
    bare = ExactStageVelocity(path, x_0, x_1)  # a backbone without entry levels is refused
    with pytest.raises(ValueError, match="enters its backbone at level"):
        StagedModel(bare, path, entry="level")


def test_level_entry_from_the_config_is_exact_where_bands_have_not_started():
    """model.stage_entry=level with stage 0's own UNet: stages 1 and 2 share one UNet, stage 1 entering
    at its 8x8 level; a real UNet's output is zero on the bands not started, and the shared UNet
    alone has entry layers."""
    cfg = unet_cfg(resolution="stage", stage_weights="coarse", stage_channels=[16, 8, 8], stage_entry="level")
    cfg.model.unet = dataclasses.replace(cfg.model.unet, channel_mult=[1, 2, 2])
    cfg.transform = dataclasses.replace(cfg.transform, levels=2)
    T = make_transform(cfg, (1, 16, 16))
    path = make_path(cfg, T)
    model = make_model(cfg, (1, 16, 16), 0, path).double()
    assert model.levels == [0, 1, 0] and [net.cfg.entry_levels for net in model.backbones] == [[], [1]]
    with torch.no_grad():  # the UNet's last layers start at zero: give them an output to check
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x, k = torch.randn(6, 1, 16, 16, dtype=torch.float64), torch.tensor([0.1, 0.5, 0.9, 0.2, 0.6, 0.95]).double()
    v = model(x, k)
    assert T.filter(v, 1 - path.started(k).double()).abs().max() < 1e-12 and v.abs().max() > 1e-3
    assert set(model.state_dict()) >= {"backbones.1.entries.1.weight", "backbones.1.exits.1.2.weight"}


@pytest.mark.parametrize(
    "change, msg",
    [
        (["model.resolution=stage", "model.stage_weights=own"], "set model.resolution=stage, model.stage_weights="),
        (["model.resolution=coarse"], "set model.resolution=stage, model.stage_weights="),
        (["model.resolution=stage", "model.name=dit"], "and model.name=unet"),
        ([], "concerns staged models"),
    ],
)
def test_level_entry_is_refused_where_it_means_nothing(change, msg):
    from kflow.config import load_config

    with pytest.raises(ConfigError, match=msg) as e:
        load_config(None, ["model.stage_entry=level", *change])
    assert "\n" not in str(e.value)


def test_level_entry_needs_a_unet_level_per_stage_size():
    cfg = unet_cfg(resolution="stage", stage_entry="level")  # 3 stages (2x2, 4x4, 8x8), a 2-level UNet
    T = make_transform(cfg, (1, 8, 8))
    with pytest.raises(ConfigError, match="model.stage_entry=level: entry level 2: a UNet with 2 levels") as e:
        make_model(cfg, (1, 8, 8), 0, make_path(cfg, T))
    assert "\n" not in str(e.value)


def test_entry_levels_follow_from_the_stages_not_from_the_unet_section():
    """model.unet.entry_levels is derived like band_windows: a value written there is replaced by what
    model.stage_entry gives, and two runs differing in it are the same run."""
    from kflow.run_identity import run_difference

    cfg = unet_cfg(resolution="stage")
    cfg.model.unet = dataclasses.replace(cfg.model.unet, entry_levels=[1])
    T = make_transform(cfg, (1, 8, 8))
    model = make_model(cfg, (1, 8, 8), 0, make_path(cfg, T))
    assert model.backbone.cfg.entry_levels == [] and not len(model.backbone.entries)
    assert run_difference(cfg.to_dict(), unet_cfg(resolution="stage").to_dict()) is None


def own_unet_model(stage_calls: str, resolution: str = "stage", weights: str = "own") -> StagedModel:
    """A real staged model from the config (3 haar bands on 16x16, small UNets), in float64."""
    cfg = unet_cfg(resolution=resolution, stage_weights=weights)
    cfg.path = dataclasses.replace(cfg.path, overlap=0.0, windows=[[0, 1], [1 / 3, 1], [2 / 3, 1]])
    cfg.train = dataclasses.replace(cfg.train, stage_calls=stage_calls)
    data = torch.randn(64, 1, 16, 16)
    torch.manual_seed(0)
    model = make_model(cfg, (1, 16, 16), 3, make_path(cfg, make_transform(cfg, (1, 16, 16), data), data)).double()
    with torch.no_grad():  # the output layers start at zero: move every weight so each one matters
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel()), dtype=p.dtype))
    return model


def stage_ks(counts) -> Tensor:
    """k for counts[s] samples of each of 3 staggered stages (starts 0, 1/3, 2/3), interleaved."""
    ks = [torch.linspace(lo + 0.01, lo + 0.3, n, dtype=torch.float64) for lo, n in zip((0, 1 / 3, 2 / 3), counts)]
    return torch.cat(ks)[torch.randperm(sum(counts), generator=torch.Generator().manual_seed(0))]


@pytest.mark.parametrize(
    "resolution, weights",
    [("stage", "own"), ("stage", "coarse"), ("stage", "shared"), ("coarse", "coarse")],
)
def test_threaded_stage_calls_compute_what_serial_calls_do(resolution, weights):
    """train.stage_calls=threads: a mixed batch's calls split over threads, forward and backward,
    give the serial model's velocity and every parameter's gradient (float64), weights shared by
    several calls included, with and without grad, and the serial gradient in x where one is asked."""
    serial, threaded = own_unet_model("serial", resolution, weights), own_unet_model("threads", resolution, weights)
    threaded.load_state_dict(serial.state_dict())
    k = stage_ks((5, 3, 2))
    x = torch.randn(len(k), 1, 16, 16, dtype=torch.float64)
    y = torch.arange(len(k)) % 3
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # two workers even on a one-core machine
    try:
        outs = []
        for model in (serial, threaded):
            v = model(x, k, y)
            (v * torch.linspace(-1, 1, v.numel(), dtype=v.dtype).view_as(v)).sum().backward()
            outs.append(v.detach())
        with torch.no_grad():
            quiet = threaded(x, k, y)
        assert torch.get_num_threads() == 2  # the workers' thread counts stay theirs
        xs = [x.clone().requires_grad_(True) for _ in range(2)]  # a gradient in x (likelihood, guidance)
        for model, xi in zip((serial, threaded), xs):
            model(xi, k, y).square().sum().backward()
    finally:
        torch.set_num_threads(before)
    torch.testing.assert_close(outs[1], outs[0], rtol=0, atol=1e-12)
    torch.testing.assert_close(quiet, outs[0], rtol=0, atol=1e-12)
    torch.testing.assert_close(xs[1].grad, xs[0].grad, rtol=0, atol=1e-12)
    grads = [(n, p.grad) for n, p in serial.named_parameters()]
    assert sum(g is not None for _, g in grads) > 0
    for (n, g), p in zip(grads, threaded.parameters()):
        assert (g is None) == (p.grad is None), n
        if g is not None:
            torch.testing.assert_close(p.grad, g, rtol=0, atol=1e-12, msg=n)


def test_the_thread_plan_shares_the_calls_out_by_cost():
    """The calls, costliest first, fill threads of equal cost (samples x pixels x parameters), a call
    split where a thread fills up; every sample goes to exactly one thread; one thread: no plan."""
    model = own_unet_model("threads")  # three equal UNets on 4x4, 8x8 and 16x16 stage images
    k = stage_ks((15, 33, 16))
    call = model._call(model.stage_of(k))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        plan = _thread_plan(model, call)
        # costs 16 x 256 + 33 x 64 + 15 x 16 = 6448 per parameter: 3224 per thread, 13 of stage 2's 16
        # samples on the first, the rest with stages 1 and 0 on the second
        assert [[(c, len(i)) for c, i in part] for part in plan] == [[(2, 13)], [(2, 3), (1, 33), (0, 15)]]
        for n in (2, 3, 5):
            torch.set_num_threads(n)
            plan = _thread_plan(model, call)
            assert len(plan) == n
            for c in range(3):
                got = torch.cat([i for part in plan for d, i in part if d == c])
                assert torch.equal(got, (call == c).nonzero().flatten())  # each sample once, in order
        torch.set_num_threads(1)
        assert _thread_plan(model, call) is None
    finally:
        torch.set_num_threads(before)


def test_threaded_stage_calls_keep_autocast():
    """Autocast is per thread: the workers run under the caller's bf16 autocast as serial calls do."""
    serial, threaded = own_unet_model("serial").float(), own_unet_model("threads").float()
    threaded.load_state_dict(serial.state_dict())
    k = stage_ks((5, 3, 1)).float()
    x = torch.randn(len(k), 1, 16, 16)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        a, b = serial(x, k), threaded(x, k)
    torch.set_num_threads(before)
    assert a.dtype == b.dtype == torch.float32  # the lifted outputs, from bf16 backbones
    torch.testing.assert_close(b, a, rtol=0, atol=0.02)  # bf16 rounding of other kernel orders
    assert not torch.equal(a, serial.float()(x, k))  # autocast did change the serial result


@pytest.mark.parametrize(
    "over",
    [
        ["model.resolution=stage", "model.stage_weights=own", "train.stage_calls=threads", "train.compile=true"],
        ["model.resolution=stage", "model.stage_weights=own", "train.stage_calls=threads", "model.unet.dropout=0.1"],
    ],
)
def test_threaded_stage_calls_are_refused_where_they_cannot_work(over):
    from kflow.config import load_config

    with pytest.raises(ConfigError, match="train.stage_calls=threads splits the calls over threads") as e:
        load_config(None, ["transform.name=wavelet", "transform.num_bands=2", *over])
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="stage_calls='parallel': use one of serial, threads"):
        StagedModel(Doubler(), staggered_path(), stage_calls="parallel")
