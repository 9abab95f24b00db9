"""The assembly models that can win: the frame network's equivariance, the endpoint option, the
new path options with the exact velocity, the learning-rate schedule, validation selection and
the run folder (checkpoints, exact resume after a stop, refusals)."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

pytest.importorskip("ase")

from test_flow import toy_clusters  # noqa: E402  (this folder is on sys.path under pytest)

from kflow.config import ConfigError, TrainConfig  # noqa: E402
from kflow.molecules.flow import BoundAssembly, assembly_path, make_batch  # noqa: E402
from kflow.molecules.model import AssemblyNetConfig, make_net  # noqa: E402
from kflow.molecules.rigid import so3_exp  # noqa: E402
from kflow.molecules.train import AssemblyConfig, AssemblyLoss, evaluate_assembly, train_assembly  # noqa: E402
from kflow.sampling import FromEndpoint, sample  # noqa: E402

F64 = torch.float64
TINY = dict(hidden=16, layers=1, mol_layers=2)


def rotate(b, u, Q, shift):
    """The batch and state moved as a whole: every start pose rotated by Q and shifted."""
    b.t0, b.R0, b.target = b.t0 @ Q.T + shift, Q @ b.R0, b.target @ Q.T + shift
    return u @ torch.block_diag(Q.T, torch.eye(3, dtype=F64))


@pytest.mark.parametrize("target", ["velocity", "endpoint"])
def test_frame_network_is_equivariant_and_permutation_equivariant(target):
    torch.manual_seed(0)
    net = make_net(AssemblyNetConfig(kind="frames", **TINY)).double()
    for p in net.head[-1].parameters():  # the head starts at zero; give it something to rotate
        torch.nn.init.normal_(p)
    b = make_batch(toy_clusters(2), dtype=F64)
    u = 0.4 * b.u1
    k = torch.tensor([0.2, 0.7], dtype=F64)
    out = BoundAssembly(net, b, target)(u, k)
    assert out.abs().max() > 1e-3
    Q = so3_exp(torch.tensor([0.3, -1.1, 0.7], dtype=F64))
    shift = torch.tensor([3.0, -2.0, 5.0], dtype=F64)
    u2 = rotate(b, u, Q, shift)
    out2 = BoundAssembly(net, b, target)(u2, k)
    torch.testing.assert_close(out2[..., :3], out[..., :3] @ Q.T, rtol=0, atol=1e-9)  # translations rotate
    torch.testing.assert_close(out2[..., 3:], out[..., 3:], rtol=0, atol=1e-9)  # u's rotation part is invariant
    # the copies are interchangeable: permuting the molecules permutes the outputs
    perm = torch.randperm(b.t0.shape[1])
    for f in ("numbers", "local", "t0", "R0", "u1", "target"):
        setattr(b, f, getattr(b, f)[:, perm])
    out3 = BoundAssembly(net, b, target)(u2[:, perm], k)
    torch.testing.assert_close(out3, out2[:, perm], rtol=0, atol=1e-9)


@pytest.mark.parametrize("flow,overlap", [("rigid_fm", 0.0), ("kflow", 0.0), ("kflow", 0.5)])
def test_endpoint_option_lands_on_the_crystal_and_inverts_the_exact_velocity(flow, overlap):
    """The x_1 estimate of the exact conditional velocity is x_1 (on the started bands), the
    velocity towards the true x_1 is the exact one, and sampling with an oracle that predicts the
    true endpoint (FromEndpoint) ends on the crystal."""
    from kflow.molecules.metrics import score_assemblies

    b = make_batch(toy_clusters(2), dtype=F64)
    path = assembly_path(b, flow, num_bands=3, overlap=overlap)
    x_0 = 0.05 * torch.randn(b.u1.shape, dtype=F64, generator=torch.Generator().manual_seed(0))
    k = torch.tensor([0.37, 0.81], dtype=F64)
    s = path.sample(x_0, b.u1, k)
    started = path.started(k).to(F64)
    want = path.transform.filter(b.u1, started)
    torch.testing.assert_close(path.x1_estimate(s.x_k, s.dx_k, k, flat="keep"), want, rtol=0, atol=1e-9)
    torch.testing.assert_close(path.velocity_from_x1(s.x_k, b.u1, k), s.dx_k, rtol=0, atol=1e-9)

    oracle = FromEndpoint(lambda u, kk, y=None: b.u1.expand_as(u), path)
    u = sample(oracle, path, 2, x_0=x_0, steps=12, device="cpu", dtype=F64).x
    torch.testing.assert_close(u, b.u1, rtol=0, atol=1e-7)
    assert score_assemblies(b.atoms(u), b.target).pm_atom < 1e-6


@pytest.mark.parametrize("overlap,bump", [(0.5, "linear"), (1.0, "linear"), (0.0, "cosine")])
def test_sampler_with_the_exact_velocity_lands_on_the_crystal_with_windows(overlap, bump):
    b = make_batch(toy_clusters(2), dtype=F64)
    path = assembly_path(b, "kflow", num_bands=3, bump=bump, overlap=overlap)
    x_0 = torch.zeros_like(b.u1)

    def exact(u, k, y=None):
        return path.sample(x_0, b.u1, k.to(F64)).dx_k

    steps = 12 if bump == "linear" else 600  # linear: constant within each grid cell; cosine: Euler's error ~ 1/steps
    u = sample(exact, path, 2, x_0=x_0, steps=steps, device="cpu", dtype=F64).x
    torch.testing.assert_close(u, b.u1, rtol=0, atol=1e-9 if bump == "linear" else 1e-2)


def test_endpoint_loss_is_zero_for_the_true_endpoint_and_weights_rotation():
    b = make_batch(toy_clusters(2), dtype=F64)
    path = assembly_path(b, "rigid_fm")
    x_0 = torch.zeros_like(b.u1)
    k = torch.tensor([0.3, 0.6], dtype=F64)

    class Truth(torch.nn.Module):  # world-frame outputs that point at the crystal from the current state
        def forward(self, atoms, numbers, kk, frames):
            s = path.sample(x_0, b.u1, k)
            st = b.state(s.x_k)
            R1 = b.R0 @ so3_exp(b.u1[..., 3:])
            from kflow.molecules.rigid import so3_log

            omega = so3_log(R1 @ st.R.transpose(-1, -2))  # exp(omega) R = R_1
            return b.t0 + b.u1[..., :3] - st.t, omega

    bound = BoundAssembly(Truth(), b, "endpoint")
    assert AssemblyLoss(path, "endpoint", 10.0)(bound, b.u1, x_0, k).loss.abs() < 1e-18
    wrong = b.u1.clone()
    wrong[..., 3:] += 0.1  # the same rotation error costs 10x with rotation_weight 10
    l1 = AssemblyLoss(path, "endpoint", 1.0)(bound, wrong, x_0, k).loss
    l10 = AssemblyLoss(path, "endpoint", 10.0)(bound, wrong, x_0, k).loss
    assert l1 > 0 and torch.isclose(l10, 10 * l1, rtol=1e-6)


def test_learning_rate_schedule():
    from kflow.training.schedule import learning_rate

    lrs = [learning_rate(1e-3, 10, s, "cosine", 100) for s in range(100)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:]))  # decays monotonically after warm-up
    assert lrs[-1] == pytest.approx(1e-5)
    assert learning_rate(1e-3, 0, 77, "constant", 100) == 1e-3


def small_cfg(**kw):
    base = dict(
        flow="kflow",
        target="endpoint",
        rotation_weight=10.0,
        eval_every=4,
        val_clusters=2,
        net=AssemblyNetConfig(kind="frames", **TINY),
    )
    train = dict(steps=12, batch_size=2, lr=2e-3, lr_schedule="cosine", warmup=2, ema_decay=0.5, ckpt_every=4)
    train.update({k: kw.pop(k) for k in list(kw) if k in train or k in ("seed", "log_every")})
    return AssemblyConfig(**{**base, **kw}, train=TrainConfig(**train))


def test_run_folder_selects_by_validation_and_resumes_exactly(tmp_path):
    train, val = toy_clusters(4), toy_clusters(2, seed=1)
    cfg = small_cfg()
    whole = train_assembly(train, cfg, out=tmp_path / "whole", val=val, log=lambda *_: None)
    assert [c["step"] for c in whole.curve] == [4, 8, 12]
    best = min(whole.curve, key=lambda c: c["pm_atom"] + c["pm_center"])
    assert whole.best_step == best["step"]
    saved = json.loads((tmp_path / "whole" / "curve.json").read_text())
    assert saved["chosen_step"] == best["step"] and saved["curve"] == whole.curve
    # stopped at step 6 (a kill after the step-4 checkpoint), then resumed from it through the shared loop
    # (the first part named its device: a run may move between devices, its batches are drawn on the CPU)
    part = train_assembly(
        train,
        replace(cfg, train=replace(cfg.train, device="cpu")),
        out=tmp_path / "split",
        val=val,
        log=lambda *_: None,
        until=6,
    )
    assert part.step == 6 and not (tmp_path / "split" / "model.safetensors").exists()
    rest = train_assembly(train, cfg, out=tmp_path / "split", val=val, log=lambda *_: None)
    assert rest.curve == whole.curve and rest.best_step == whole.best_step
    for (n, a), (_, c) in zip(whole.net.state_dict().items(), rest.net.state_dict().items()):
        torch.testing.assert_close(a, c, rtol=0, atol=0, msg=n)
    # the finished run loads and scores
    from kflow.molecules.runs import load_assembly_run

    net, loaded = load_assembly_run(tmp_path / "split")
    assert loaded == cfg
    s = evaluate_assembly(net, val, loaded, samples=2, steps=4)
    assert np.isfinite(s.pm_atom) and s.clusters == 2


def test_run_folder_refusals(tmp_path):
    from kflow.utils.errors import CheckpointError, TrainingError

    train = toy_clusters(2)
    cfg = small_cfg(eval_every=0, steps=4)
    train_assembly(train, cfg, out=tmp_path / "run", log=lambda *_: None)
    with pytest.raises(TrainingError, match="already holds a run"):
        train_assembly(train, cfg, out=tmp_path / "run", resume=False, log=lambda *_: None)
    with pytest.raises(TrainingError, match="--resume: train.lr was 0.002"):
        train_assembly(train, small_cfg(eval_every=0, steps=4, lr=1e-3), out=tmp_path / "run", log=lambda *_: None)
    with pytest.raises(ConfigError, match="needs validation clusters"):
        train_assembly(train, small_cfg(), log=lambda *_: None)
    from kflow.molecules.runs import load_assembly_run

    with pytest.raises(CheckpointError, match="no model.safetensors"):
        load_assembly_run(tmp_path)
    # the message names the flag the command takes
    with pytest.raises(TrainingError, match=r"replace it with --overwrite \S+run$"):
        train_assembly(train, cfg, out=tmp_path / "run", resume=False, log=lambda *_: None)


def test_overwrite_leaves_nothing_of_the_old_run_and_final_weights_are_checksummed(tmp_path):
    from kflow.molecules.runs import load_assembly_run
    from kflow.utils.errors import CheckpointError

    train, val = toy_clusters(2), toy_clusters(2, seed=1)
    out = tmp_path / "run"
    train_assembly(train, small_cfg(), out=out, val=val, log=lambda *_: None)
    old = {name: (out / name).read_bytes() for name in ("best.safetensors", "model.safetensors", "curve.json")}
    # the new run stops before its first validation: none of the old run's files may survive
    train_assembly(
        train, small_cfg(lr=1e-3), out=out, val=val, resume=False, overwrite=True, until=2, log=lambda *_: None
    )
    assert not any((out / name).exists() for name in old)
    train_assembly(train, small_cfg(lr=1e-3), out=out, val=val, log=lambda *_: None)
    assert all((out / name).read_bytes() != data for name, data in old.items())
    # 4 KiB of model.safetensors inverted: refused by its checksums, not scored
    weights = out / "model.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[-4096:] = bytes(255 - b for b in raw[-4096:])
    weights.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="does not match its checksum"):
        load_assembly_run(out)


def test_weights_load_under_their_own_run_only_and_survive_newer_config_keys(tmp_path):
    """model.safetensors carries the config that wrote it: another run's weights are refused; a run
    written before a config key existed still loads (the key takes its default)."""
    import json
    import shutil

    from kflow.molecules.runs import load_assembly_run
    from kflow.utils.checkpoint import load_tensors, save_tensors
    from kflow.utils.errors import CheckpointError

    train, val = toy_clusters(2), toy_clusters(2, seed=1)
    a, b = tmp_path / "a", tmp_path / "b"
    train_assembly(train, small_cfg(), out=a, val=val, log=lambda *_: None)
    train_assembly(train, small_cfg(rotation_weight=1.0), out=b, val=val, log=lambda *_: None)
    shutil.copy(b / "model.safetensors", a / "model.safetensors")
    with pytest.raises(CheckpointError, match="was not written by the run in"):
        load_assembly_run(a)
    # b as an older version wrote it: neither config.json nor the weights know steric_distance
    tensors, meta = load_tensors(b / "model.safetensors")
    del meta["config"]["steric_distance"]
    save_tensors(b / "model.safetensors", tensors, meta)
    saved = json.loads((b / "config.json").read_text())
    del saved["steric_distance"]
    (b / "config.json").write_text(json.dumps(saved))
    net, cfg = load_assembly_run(b)
    assert cfg.steric_distance == 1.5 and cfg.rotation_weight == 1.0


def test_new_options_are_validated():
    for bad, match in [
        ({"target": "x1"}, "target='x1'"),
        ({"train": {"lr_schedule": "step"}}, "train.lr_schedule='step'"),
        ({"train": {"warmup": 5000}}, "train.warmup=5000"),
        ({"overlap": 1.5}, "overlap=1.5"),
        ({"net": {"kind": "painn"}}, "net.kind='painn'"),
        ({"net": {"kind": "frames", "hidden": 30}}, "divisible by 4"),
        ({"train": {"device": "tpu"}}, "train.device='tpu'"),
        ({"net": {"layers": -1}}, r"net.layers=-1 is out of range"),
        ({"net": {"mol_layers": -2}}, r"net.mol_layers=-2 is out of range"),
        ({"net": {"hidden": 0}}, r"net.hidden=0 is out of range"),
        ({"net": {"hidden": -4}}, r"net.hidden=-4 is out of range"),
        ({"net": {"kind": "egnn", "cutoff": -1}}, r"net.cutoff=-1(.0)? is out of range"),
    ]:
        with pytest.raises(ConfigError, match=match):
            AssemblyConfig.from_dict(bad)


def test_window_embedding_sees_the_paths_windows(tmp_path):
    """k_embedding='window': the network's k-embedding holds the path's band windows (the same for
    every cluster), training and reloading use them alike."""
    b = make_batch(toy_clusters(2), dtype=F64)
    cfg = small_cfg(eval_every=0, steps=3, k_embedding="window", overlap=0.5)
    want = cfg.path(b).windows()
    torch.testing.assert_close(torch.tensor(cfg.band_windows(), dtype=F64), want.to(F64), rtol=0, atol=1e-6)
    assert AssemblyConfig(k_embedding="k").band_windows() == []
    run = train_assembly(toy_clusters(2), cfg, out=tmp_path / "w", log=lambda *_: None)
    assert run.net.k_embed.windows.shape == (3, 2)
    from kflow.molecules.runs import load_assembly_run

    net, _ = load_assembly_run(tmp_path / "w")
    torch.testing.assert_close(net.k_embed.windows, run.net.k_embed.windows)


@pytest.mark.parametrize("overlap", [0.0, 0.5])
def test_rotations_on_their_own_band_move_like_fm_and_land_on_the_crystal(overlap):
    """rotations='own': the rotational part follows FM's straight line at every k (velocity u_1 - u_0
    on features 3:6), the translations go band by band, and Euler with the exact velocity ends on
    the crystal."""
    b = make_batch(toy_clusters(2), dtype=F64)
    path = assembly_path(b, "kflow", num_bands=3, overlap=overlap, rotations="own")
    assert path.num_bands == 4 and path.windows()[-1].tolist() == [0.0, 1.0]
    x_0 = 0.05 * torch.randn(b.u1.shape, dtype=F64, generator=torch.Generator().manual_seed(1))
    k = torch.tensor([0.1, 0.55], dtype=F64)
    s = path.sample(x_0, b.u1, k)
    torch.testing.assert_close(s.dx_k[..., 3:], (b.u1 - x_0)[..., 3:], rtol=0, atol=1e-10)
    torch.testing.assert_close(s.x_k[..., 3:], (x_0 + k[:, None, None] * (b.u1 - x_0))[..., 3:], rtol=0, atol=1e-10)
    graph = assembly_path(b, "kflow", num_bands=3, overlap=overlap)  # translations as on the all-graph path
    torch.testing.assert_close(s.x_k[..., :3], graph.sample(x_0, b.u1, k).x_k[..., :3], rtol=0, atol=1e-10)

    def exact(u, kk, y=None):
        return path.sample(x_0, b.u1, kk.to(F64)).dx_k

    u = sample(exact, path, 2, x_0=x_0, steps=12, device="cpu", dtype=F64).x
    torch.testing.assert_close(u, b.u1, rtol=0, atol=1e-9)
    cfg = AssemblyConfig(flow="kflow", rotations="own", overlap=overlap, k_embedding="window")
    assert len(cfg.band_windows()) == 4
    with pytest.raises(ConfigError, match="rotations='none'"):
        AssemblyConfig(rotations="none")


def test_benchmark_oracle_places_the_true_crystal(monkeypatch):
    """The benchmark's oracle rows: with the crystal's own orientation among the candidates and a
    start that is the crystal itself, the cheapest placement costs 0 and scores PM 0; every turned
    candidate is still the crystal (the same centre distances), only the slots the molecules took differ."""
    import importlib.util
    from pathlib import Path

    from kflow.molecules.clusters import Cluster
    from kflow.molecules.metrics import score_assemblies

    bench = Path(__file__).parents[2] / "benchmarks"
    monkeypatch.syspath_prepend(str(bench))  # for its `toolkit`; loaded by path: tests/molecules is a folder too
    spec = importlib.util.spec_from_file_location("benchmark_molecules", bench / "molecules.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    oracle_placements = module.oracle_placements

    c = toy_clusters(1)[0]
    c = Cluster(c.name, c.smiles, c.numbers, c.target, c.target.copy())  # start = crystal
    b = make_batch([c], dtype=F64)
    placed = oracle_placements(b, turns=5)
    costs = [p[0] for p in placed]
    assert costs == sorted(costs) and costs[0] < 1e-12
    s = score_assemblies(placed[0][1], b.target)
    assert s.pm_atom < 1e-6 and s.pm_center < 1e-6
    distances = lambda x: torch.pdist(x[0].mean(1)).sort().values
    for _, atoms in placed[1:]:
        torch.testing.assert_close(distances(atoms), distances(b.target))


def test_out_of_range_settings_say_the_rule():
    with pytest.raises(ConfigError, match=r"train.warmup=100 must be below train.steps=2"):
        AssemblyConfig.from_dict({"train": {"warmup": 100, "steps": 2}})


@pytest.mark.parametrize("rule", ["stop", "skip"])
def test_a_nonfinite_step_follows_the_image_loops_rule(rule, tmp_path, monkeypatch, capsys):
    """train.nonfinite as for images: 'stop' ends the run at the next log or save with the last good
    checkpoint named, 'skip' drops the step and trains on."""
    from kflow.molecules import train as mtrain
    from kflow.training.loss import LossOutput
    from kflow.utils.errors import TrainingError

    real, calls = mtrain.AssemblyLoss.__call__, []

    def poisoned(self, *args, **kwargs):
        out = real(self, *args, **kwargs)
        calls.append(1)
        return LossOutput(out.loss * float("nan"), out.per_sample, out.band) if len(calls) == 3 else out

    monkeypatch.setattr(mtrain.AssemblyLoss, "__call__", poisoned)
    cfg = small_cfg(eval_every=0, steps=8, ckpt_every=2, log_every=2)
    cfg = replace(cfg, train=replace(cfg.train, nonfinite=rule))
    out = tmp_path / "run"
    if rule == "stop":
        with pytest.raises(
            TrainingError, match=r"non-finite loss or gradient at step 2; stopped. Last good .*ckpt-00000002"
        ):
            train_assembly(toy_clusters(2), cfg, out=out, log=lambda *_: None)
        assert not (out / "model.safetensors").exists()
    else:
        r = train_assembly(toy_clusters(2), cfg, out=out, log=lambda *_: None)
        assert r.step == 8 and "step 2 (loss=nan" in capsys.readouterr().out


def test_the_steric_term_adds_the_clash_penalty_of_the_predicted_endpoint():
    from kflow.molecules.metrics import clash_penalty

    clusters = toy_clusters(2)
    b = make_batch(clusters, dtype=torch.float64)
    cfg = small_cfg()
    path = cfg.path(b)
    torch.manual_seed(0)
    net = make_net(cfg.net, cfg.band_windows()).double()
    bound = BoundAssembly(net, b, "endpoint")
    x_0, k = 0.1 * torch.randn_like(b.u1), torch.full((2,), 0.4, dtype=torch.float64)
    plain = AssemblyLoss(path, "endpoint", 10.0)(bound, b.u1, x_0, k).per_sample
    steric = AssemblyLoss(path, "endpoint", 10.0, steric_weight=3.0, steric_distance=2.5)(bound, b.u1, x_0, k)
    pose = bound.endpoint_pose(path.sample(x_0, b.u1, k).x_k, k)
    clash = clash_penalty(pose.atoms(b.local), b.numbers > 0, 2.5)
    torch.testing.assert_close(steric.per_sample, plain + 3.0 * clash)
    with pytest.raises(ConfigError, match="steric_weight needs target=endpoint"):
        AssemblyConfig.from_dict({"target": "velocity", "steric_weight": 1.0})
