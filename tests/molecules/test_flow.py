"""The assembly flow: exact endpoints, finite-difference velocity of the path in u, equivariance
of the network, and a few training steps through the shared loss and sampler."""

import numpy as np
import pytest
import torch

pytest.importorskip("ase")

from kflow.config import TrainConfig  # noqa: E402
from kflow.molecules.clusters import Cluster, loose_start  # noqa: E402
from kflow.molecules.config import AssemblyConfig  # noqa: E402
from kflow.molecules.crystals import Crystal, cut_clusters  # noqa: E402
from kflow.molecules.flow import BoundAssembly, assembly_path, make_batch  # noqa: E402
from kflow.molecules.model import AssemblyNet, AssemblyNetConfig  # noqa: E402
from kflow.molecules.rigid import so3_exp  # noqa: E402


def toy_clusters(n=3, seed=0):
    """Clusters cut from a hand-made crystal of a bent 4-atom molecule (C, N, O, H)."""
    rng = np.random.default_rng(seed)
    mol = np.array([[0.0, 0, 0], [1.4, 0, 0], [2.0, 1.2, 0], [-0.6, -0.9, 0.3]])
    cell = np.diag([5.0, 6.0, 7.0])
    c = Crystal("toy", "CNO", np.array([6, 7, 8, 1]), mol + 1.0, cell)
    ((nums, pos),) = cut_clusters(c, centres=1)
    pos = pos - pos.reshape(-1, 3).mean(0)
    return [Cluster("toy", "CNO", nums, pos, loose_start(pos, rng)) for _ in range(n)]


def test_endpoints_are_the_start_and_the_crystal():
    clusters = toy_clusters()
    b = make_batch(clusters, dtype=torch.float64)
    start = torch.stack([torch.from_numpy(c.start) for c in clusters])
    target = torch.stack([torch.from_numpy(c.target) for c in clusters])
    torch.testing.assert_close(b.atoms(torch.zeros_like(b.u1)), start, rtol=0, atol=1e-9)
    torch.testing.assert_close(b.atoms(b.u1), target, rtol=0, atol=1e-9)


@pytest.mark.parametrize("flow", ["rigid_fm", "kflow"])
def test_path_velocity_is_the_finite_difference(flow):
    b = make_batch(toy_clusters(), dtype=torch.float64)
    path = assembly_path(b, flow, num_bands=3)
    x_0, x_1 = torch.zeros_like(b.u1), b.u1
    for k in (0.1, 0.45, 0.8):
        kk = torch.full((3,), k, dtype=torch.float64)
        h = 1e-6
        fd = (path.sample(x_0, x_1, kk + h).x_k - path.sample(x_0, x_1, kk - h).x_k) / (2 * h)
        torch.testing.assert_close(path.sample(x_0, x_1, kk).dx_k, fd, rtol=0, atol=1e-6)
    end = path.sample(x_0, x_1, torch.ones(3, dtype=torch.float64)).x_k
    torch.testing.assert_close(end, x_1, rtol=0, atol=1e-12)
    if flow == "kflow":  # band 0 first: at the end of band 0 only the collective (lowest) frequencies moved
        T = path.transform
        k0 = torch.full((3,), path.kappa[1].item(), dtype=torch.float64)
        c = T.analyze(path.sample(x_0, x_1, k0).x_k)
        torch.testing.assert_close(c[:, T.bands == 0], T.analyze(x_1)[:, T.bands == 0], rtol=0, atol=1e-12)
        assert c[:, T.bands > 0].abs().max() < 1e-12


@pytest.mark.parametrize("mol_layers", [1, 3])
def test_network_is_equivariant(mol_layers):
    torch.manual_seed(0)
    net = AssemblyNet(AssemblyNetConfig(hidden=16, layers=2, mol_layers=mol_layers)).double()
    b = make_batch(toy_clusters(2), dtype=torch.float64)
    atoms = b.atoms(0.3 * b.u1)
    k = torch.tensor([0.2, 0.7], dtype=torch.float64)
    v, w = net(atoms, b.numbers, k)
    Q = so3_exp(torch.tensor([0.3, -1.1, 0.7], dtype=torch.float64))
    shift = torch.tensor([3.0, -2.0, 5.0], dtype=torch.float64)
    v2, w2 = net(atoms @ Q.T + shift, b.numbers, k)
    torch.testing.assert_close(v2, v @ Q.T, rtol=0, atol=1e-9)
    torch.testing.assert_close(w2, w @ Q.T, rtol=0, atol=1e-9)
    # and the velocity in u (translation part equivariant, rotation part invariant) follows
    model = BoundAssembly(net, b)
    out = model(0.3 * b.u1, k)
    b.t0, b.R0 = b.t0 @ Q.T + shift, Q @ b.R0
    out2 = BoundAssembly(net, b)(0.3 * b.u1 @ torch.block_diag(Q.T, torch.eye(3, dtype=torch.float64)), k)
    torch.testing.assert_close(out2[..., :3], out[..., :3] @ Q.T, rtol=0, atol=1e-9)
    torch.testing.assert_close(out2[..., 3:], out[..., 3:], rtol=0, atol=1e-9)


@pytest.mark.parametrize("flow", ["rigid_fm", "kflow"])
def test_sampler_with_the_exact_velocity_lands_on_the_crystal(flow):
    """With the conditional velocity of the true pair as the model, Euler on the band grid (linear
    bump: constant velocity within a band) ends exactly on the crystal: PM 0, no collision."""
    from kflow.molecules.metrics import score_assemblies
    from kflow.sampling import sample

    clusters = toy_clusters(2)
    b = make_batch(clusters, dtype=torch.float64)
    path = assembly_path(b, flow, num_bands=3)

    def oracle(u, k, y=None):
        return path.sample(torch.zeros_like(b.u1), b.u1, k.double()).dx_k

    u = sample(oracle, path, 2, x_0=torch.zeros_like(b.u1), steps=9, device="cpu", dtype=torch.float64).x
    torch.testing.assert_close(u, b.u1, rtol=0, atol=1e-9)
    s = score_assemblies(b.atoms(u), b.target)
    assert s.pm_atom < 1e-8 and s.pm_center < 1e-8 and s.collision_rate == 0


def test_training_a_few_steps_lowers_the_loss_and_evaluates():
    from kflow.molecules.train import AssemblyConfig, evaluate_assembly, train_assembly

    logs = []
    train = TrainConfig(steps=40, batch_size=4, lr=3e-3, warmup=0, ema_decay=0.0, log_every=10)
    cfg = AssemblyConfig(flow="kflow", train=train, net=AssemblyNetConfig(hidden=16, layers=2))
    net = train_assembly(toy_clusters(4), cfg, log=logs.append).net
    losses = [float(line.split("loss ")[1].split()[0]) for line in logs if "loss " in line]
    assert losses[-1] < losses[0]
    s = evaluate_assembly(net, toy_clusters(2, seed=1), cfg, samples=2, steps=6)
    assert s.clusters == 2 and s.samples_per_cluster == 2 and np.isfinite(s.pm_atom) and np.isfinite(s.pm_center)


def test_assembly_config_is_validated_and_round_trips(tmp_path):
    import json

    from kflow.config import ConfigError
    from kflow.molecules.model import AssemblyNetConfig
    from kflow.molecules.train import AssemblyConfig
    from kflow.utils.atomic import atomic_write_json

    cfg = AssemblyConfig(flow="rigid_fm", train=TrainConfig(steps=5, warmup=0), net=AssemblyNetConfig(hidden=8))
    atomic_write_json(tmp_path / "config.json", cfg.to_dict())
    assert AssemblyConfig.from_dict(json.loads((tmp_path / "config.json").read_text())) == cfg
    for bad, match in [
        ({"flow": "diffusion"}, "flow='diffusion'"),
        ({"train": {"steps": 0}}, "train.steps=0"),
        ({"train": {"lr": "fast"}}, "config key train.lr must be float"),
        ({"train": {"cond_aug": 0.1}}, "train.cond_aug concerns image runs"),
        ({"steps": 3}, "unknown config key steps"),
        ({"stpes": 3}, "unknown config key stpes"),
        ({"pairing": "closest"}, "pairing='closest'"),
        ({"net": {"hidden": "x"}}, "hidden"),
    ]:
        with pytest.raises(ConfigError, match=match):
            AssemblyConfig.from_dict(bad)


def test_aligned_pairing_turns_the_crystal_onto_a_turned_start():
    """A start that is the crystal turned as a whole (each molecule also spun in place) is a
    crystal already: the aligned pairing turns the target onto it, so no molecule has to move,
    while the nearest pairing keeps the crystal's orientation and moves them all. Either way the
    target is the same crystal (the same centre distances, slots relabelled)."""
    from scipy.spatial.transform import Rotation

    from kflow.molecules.clusters import pair
    from kflow.molecules.rigid import random_rotations

    c = toy_clusters(1)[0]
    Q = Rotation.from_rotvec([0.3, 2.1, -0.8]).as_matrix()
    centres = c.target.mean(1, keepdims=True)
    spin = random_rotations(len(centres), np.random.default_rng(3))
    start = np.einsum("mij,maj->mai", spin, c.target - centres) + centres @ Q.T
    c = Cluster(c.name, c.smiles, c.numbers, c.target, start)
    aligned, nearest = pair([c], "aligned")[0], pair([c], "nearest")[0]
    move = lambda p: np.abs(p.target.mean(1) - p.start.mean(1)).max()
    assert move(aligned) < 1e-9 and move(nearest) > 1.0
    distances = lambda p: np.sort(np.linalg.norm(p.target.mean(1)[:, None] - p.target.mean(1)[None], axis=-1).ravel())
    np.testing.assert_allclose(distances(aligned), distances(c), atol=1e-9)
    b = make_batch([aligned], dtype=torch.float64)  # and the crystal is reached by the path's endpoint
    from kflow.molecules.metrics import score_assemblies

    assert score_assemblies(b.atoms(b.u1), b.target).pm_atom < 1e-8


@pytest.mark.parametrize("rotations", ["graph", "own"])
def test_molecule_config_windows_are_every_clusters_path_windows(rotations):
    """The molecule k-embedding's windows come from the schedule alone; every cluster's path has them."""
    cfg = AssemblyConfig(flow="kflow", num_bands=3, overlap=0.5, rotations=rotations, k_embedding="window")
    batch = make_batch(toy_clusters(3), dtype=torch.float64)
    want = assembly_path(batch, "kflow", 3, "linear", 0.5, rotations).windows()
    assert torch.equal(torch.tensor(cfg.band_windows(), dtype=torch.float64), want)


def test_cached_graph_basis_equals_the_recomputed_one():
    """The training loop collates per-cluster batches made once; their start-graph spectrum must be
    the one the path would compute from the collated batch's start centres every step."""
    from kflow.molecules.train import collate
    from kflow.transforms.graph import GraphTransform, gaussian_weights

    clusters = toy_clusters(n=4, seed=3)
    singles = [make_batch([c]) for c in clusters]
    b = collate([singles[i] for i in (2, 0, 3, 3, 1)])
    cached = assembly_path(b, "kflow", num_bands=3).transform
    fresh = GraphTransform(gaussian_weights(b.t0.double()), features=6, num_bands=3)
    torch.testing.assert_close(cached.basis, fresh.basis, rtol=0, atol=1e-12)
    torch.testing.assert_close(cached.eigenvalues, fresh.eigenvalues, rtol=0, atol=1e-12)
    x = torch.randn(5, *fresh.shape, dtype=torch.float64)
    torch.testing.assert_close(cached.analyze(x), fresh.analyze(x), rtol=0, atol=1e-12)
    assert torch.equal(cached.bands, fresh.bands)
    with pytest.raises(ValueError, match="weights or its spectrum"):
        GraphTransform(gaussian_weights(b.t0.double()), spectrum=(cached.eigenvalues, cached.basis))
