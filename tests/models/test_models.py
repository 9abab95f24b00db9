from pathlib import Path

import pytest
import torch

from kflow.models import DiT, DiTConfig, UNet, UNetConfig

ROOT = Path(__file__).resolve().parents[2]


def test_unet_shapes_conditioning_and_gradients():
    m = UNet(
        UNetConfig(
            in_channels=3,
            image_size=16,
            channels=16,
            channel_mult=[1, 2],
            num_res_blocks=1,
            attention_resolutions=[8],
            num_classes=5,
        )
    )
    x, k, y = torch.randn(4, 3, 16, 16), torch.rand(4), torch.tensor([0, 1, 4, 5])  # 5 = null class
    out = m(x, k, y)
    assert out.shape == x.shape
    # zero-initialised output layer: the untrained model predicts 0; after one step it depends on y and k
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    target = torch.randn_like(x)
    for _ in range(3):  # zero-initialised layers: gradients reach the inner layers from step 2 on
        opt.zero_grad()
        (m(x, k, y) - target).pow(2).mean().backward()
        opt.step()
    assert not torch.allclose(m(x, k, y), m(x, k, None))
    assert not torch.allclose(m(x, k, y), m(x, k.flip(0), y))
    # a scalar k (a number or a 0-d tensor) means that k for every sample
    torch.testing.assert_close(m(x, 0.5, None), m(x, torch.full((4,), 0.5), None), rtol=0, atol=0)
    torch.testing.assert_close(m(x, torch.tensor(0.5), None), m(x, torch.full((4,), 0.5), None), rtol=0, atol=0)
    with pytest.raises(ValueError, match="k has 3 entries for a batch of 4"):
        m(x, torch.rand(3), None)
    with pytest.raises(ValueError, match=r"class 9 does not exist: classes are 0..4 \(or 5, the null class\)"):
        m(x, k, torch.tensor([0, 1, 2, 9]))


@pytest.mark.parametrize("experts", [0, 4])
def test_dit_forward_backward(experts):
    cfg = DiTConfig(in_channels=4, image_size=8, patch_size=2, size="XS", num_classes=3, num_experts=experts)
    m = DiT(cfg)
    x = torch.randn(2, 4, 8, 8)
    out = m(x, torch.rand(2), torch.tensor([0, 3]))
    assert out.shape == x.shape
    assert torch.count_nonzero(out) == 0  # adaLN-Zero + zero output layer start at 0
    opt = torch.optim.SGD(m.parameters(), lr=0.5)
    for _ in range(3):  # zero-initialised gates: experts see gradients from step 3 on
        opt.zero_grad()
        (m(x, torch.rand(2)) - x).pow(2).mean().backward()
        opt.step()
    assert torch.count_nonzero(m(x, torch.rand(2))) > 0
    if experts:
        assert any(e.fc1.weight.grad is not None and e.fc1.weight.grad.abs().sum() > 0 for e in m.blocks[0].mlp.experts)


def test_dit_bad_sizes():
    with pytest.raises(ValueError, match="unknown DiT size"):
        DiT(DiTConfig(size="XXL"))
    with pytest.raises(ValueError, match="divisible"):
        DiT(DiTConfig(image_size=10, patch_size=4))


def test_band_k_embedding_marks_the_band_position():
    from kflow.models.embeddings import KEmbedding

    emb = KEmbedding(16, freq_dim=8, band_edges=[1 / 3, 2 / 3])
    k = torch.tensor([0.0, 1 / 3 - 1e-4, 1 / 3, 0.5, 2 / 3, 1.0])
    onehot = emb.features(k)[:, 8:]
    assert onehot.argmax(1).tolist() == [0, 0, 1, 1, 2, 2]  # a boundary belongs to the band starting there
    assert torch.equal(onehot.sum(1), torch.ones(6))
    assert emb(k).shape == (6, 16)
    assert KEmbedding(16, freq_dim=8).features(k).shape == (6, 8)  # no edges: sinusoids only


@pytest.mark.parametrize("model", ["unet", "dit"])
def test_band_k_embedding_is_saved_with_the_run(tmp_path, model, monkeypatch):
    """k_embedding=band takes the path's boundaries into the model config; load_run rebuilds the same net."""
    from pathlib import Path

    from kflow.config import load_config
    from kflow.runs import load_run
    from kflow.training import Trainer

    monkeypatch.setenv("KFLOW_PROGRESS", "0")
    root = Path(__file__).resolve().parents[2]
    extra = ["model.name=dit", "model.dit.size=XS", "model.dit.patch_size=2"] if model == "dit" else []
    cfg = load_config(
        root / "configs" / "digits_tiny.yaml",
        [
            f"out_dir={tmp_path}",
            "train.device=cpu",
            "train.steps=2",
            "train.ckpt_every=2",
            "model.k_embedding=band",
            "path.allocation=[0.6,0.3,0.1]",
            *extra,
        ],
    )
    tr = Trainer(cfg)
    tr.fit()
    edges = tr.path.kappa[1:-1].tolist()
    assert tr.model.k_emb.edges.tolist() == pytest.approx(edges)
    run = load_run(tmp_path)
    assert run.model.k_emb.edges.tolist() == pytest.approx(edges)
    x, k = torch.randn(3, 1, 8, 8), torch.tensor([0.1, 0.6, 0.95])
    with torch.no_grad():
        assert torch.allclose(run.model(x, k), tr.ema(x, k))


def test_window_embedding_sees_each_bands_local_time():
    from kflow.models.embeddings import KEmbedding

    emb = KEmbedding(16, freq_dim=8, band_windows=[[0.0, 0.75], [0.25, 1.0]])
    f = emb.features(torch.tensor([0.0, 0.5, 0.8, 1.0]))
    t, moving = f[:, 8:10], f[:, 10:12]
    torch.testing.assert_close(t, torch.tensor([[0.0, 0.0], [2 / 3, 1 / 3], [1.0, 0.55 / 0.75], [1.0, 1.0]]))
    assert moving.tolist() == [[1, 0], [1, 1], [0, 1], [0, 1]]


def test_k_embedding_window_comes_from_the_path_and_round_trips(tmp_path):
    from kflow.config import load_config
    from kflow.runs import load_run
    from kflow.training import Trainer

    cfg = load_config(
        ROOT / "configs" / "digits_tiny.yaml",
        [
            f"out_dir={tmp_path}",
            "train.device=cpu",
            "train.steps=2",
            "train.ckpt_every=2",
            "path.overlap=0.5",
            "model.k_embedding=window",
            "transform.num_bands=2",
        ],
    )
    tr = Trainer(cfg)
    tr.fit()
    assert tr.model.cfg.band_windows == tr.path.windows().tolist()
    run = load_run(tmp_path)
    assert run.model.cfg.band_windows == tr.path.windows().tolist()
    x, k = torch.randn(3, 1, 8, 8), torch.rand(3)
    torch.testing.assert_close(
        run.model(x, k, torch.zeros(3, dtype=torch.long)), tr.ema(x, k, torch.zeros(3, dtype=torch.long))
    )


def nested_unet(**change):
    cfg = UNetConfig(in_channels=2, image_size=16, channels=8, channel_mult=[1, 2, 2], num_res_blocks=1)
    return UNet(UNetConfig(**{**cfg.__dict__, **change}))


def test_entry_levels_leave_the_full_size_unet_as_it_was():
    """Entry layers are built after everything else: the same seed draws the same weights, and a
    full-size image goes through the same function bit for bit."""
    torch.manual_seed(0)
    plain = nested_unet()
    torch.manual_seed(0)
    nested = nested_unet(entry_levels=[1, 2])
    extra = set(nested.state_dict()) - set(plain.state_dict())
    assert extra and all(key.startswith(("entries.", "exits.")) for key in extra)
    for key, p in plain.state_dict().items():
        assert torch.equal(p, nested.state_dict()[key]), key
    x, k = torch.randn(3, 2, 16, 16), torch.rand(3)
    assert torch.equal(plain(x, k), nested(x, k))


@pytest.mark.parametrize("level", [1, 2])
def test_an_image_entering_at_a_level_meets_each_weight_at_its_full_size_scale(level):
    """An image 2^l times smaller entering at level l passes the blocks of levels l.. at exactly the
    shapes the full-size image meets them with, and touches no weight of the levels above (no
    gradient there), only its own entry and exit."""
    torch.manual_seed(0)
    net = nested_unet(entry_levels=[1, 2])
    for p in net.parameters():  # zero-initialised last layers would hide gradients
        p.data.add_(0.05 * torch.randn_like(p))
    shapes: dict[str, list] = {}
    hooks = [
        m.register_forward_hook(lambda m, inp, out, name=name: shapes.setdefault(name, []).append(tuple(inp[0].shape)))
        for name, m in net.named_modules()
        if type(m).__name__ in ("ResBlock", "Attention")
    ]
    net(torch.randn(1, 2, 16, 16), torch.rand(1))
    full, shapes = shapes, {}
    x = torch.randn(1, 2, 16 >> level, 16 >> level)
    v = net(x, torch.rand(1), level=level)
    for h in hooks:
        h.remove()
    assert v.shape == x.shape and shapes and all(shapes[name] == full[name] for name in shapes)
    v.pow(2).sum().backward()
    touched = {".".join(name.split(".")[:2]) for name, p in net.named_parameters() if p.grad is not None}
    assert f"entries.{level}" in touched and f"exits.{level}" in touched and "inp.weight" not in touched
    assert not {f"entries.{lv}" for lv in (1, 2) if lv != level} & touched
    assert "down.0" not in touched and f"up.{len(net.up) - 1}" not in touched  # level 0's first and last blocks
    with pytest.raises(ValueError, match="level=3: this UNet takes images at levels"):
        net(x, torch.rand(1), level=3)
