"""One seed, one x_0: `kflow sample`, the studio and `kflow edit` start from the same noise."""

import numpy as np
import torch

from kflow.cli.main import main
from kflow.runs import load_run
from kflow.sampling import sample
from kflow.sampling.noise import draw_x0
from kflow.steering import split_noise
from kflow.studio.engine import Studio
from kflow.studio.progress import Progress
from kflow.studio.requests import GenerateRequest


def test_draw_x0_is_the_seed_alone():
    a = draw_x0(3, (1, 8, 8), seed=5)
    assert a.dtype == torch.float32 and a.shape == (3, 1, 8, 8)
    torch.testing.assert_close(draw_x0(3, (1, 8, 8), 5), a, rtol=0, atol=0)
    assert torch.equal(draw_x0(3, (1, 8, 8), 5, torch.float64), a.double())  # float64 runs: the same noise
    assert not torch.equal(draw_x0(3, (1, 8, 8), 6), a)


def test_same_seed_same_noise_in_sample_studio_and_edit(tiny_run, tmp_path):
    seed, n, steps = 3, 4, 5
    run = load_run(tiny_run)
    shape = tuple(run.path.transform.shape)
    x_0 = draw_x0(n, shape, seed)
    assert torch.equal(sample(run.model, run.path, n, steps=steps, seed=seed).x_0, x_0)
    # the CLI's samples and the studio's, from the same seed and settings, are the same images
    args = ["--n", n, "--steps", steps, "--solver", "euler", "--grid", "band", "--seed", seed]
    assert main(["sample", str(tiny_run), *map(str, args), "--out", str(tmp_path / "s")]) == 0
    with np.load(tmp_path / "s" / "samples.npz") as f:
        cli_images = f["x"]
    studio = Studio(tiny_run)
    req = GenerateRequest.parse({"n": n, "seed": seed, "steps": steps, "solver": "euler"}, run.path.num_bands)
    r = studio.generate(req, Progress())
    assert torch.equal(r.arrays["x_0"], x_0)
    torch.testing.assert_close(r.noise, run.path.transform.analyze(x_0.double()), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(r.arrays["x_uint8"], cli_images)
    # `kflow edit --seed`: the redrawn bands of the edited noise are that seed's noise
    out = tmp_path / "e"
    assert (
        main(
            ["edit", str(tiny_run), "digits:test", "--n", "2", "--keep-bands", "0", "--steps", "3"]
            + ["--seed", str(seed), "--out", str(out)]
        )
        == 0
    )
    T = run.path.transform
    with np.load(out / "edit.npz") as f:
        edited = T.analyze(torch.from_numpy(f["x_0_edited"]).double())
    fresh = T.analyze(draw_x0(2, shape, seed, torch.float64))
    redrawn = T.bands != 0
    torch.testing.assert_close(edited[:, redrawn], fresh[:, redrawn], rtol=0, atol=1e-5)
    # noise splitting: the per-sample bands are that seed's noise too
    split = T.analyze(split_noise(T, n, fix_bands=[0], seed=seed, shared_seed=11, dtype=torch.float64))
    torch.testing.assert_close(split[:, redrawn], T.analyze(x_0.double())[:, redrawn], rtol=0, atol=1e-6)
    torch.testing.assert_close(split[:, ~redrawn], T.analyze(draw_x0(1, shape, 11).double())[:, ~redrawn].expand(n, -1))
