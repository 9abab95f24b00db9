import torch

from kflow import FourierTransform, KFlowPath
from kflow.analysis import band_strip


class Exact(torch.nn.Module):
    """Exact conditional velocity for the (fixed) noise and data of the strip's batch."""

    def __init__(self, path, x_0, x_1):
        super().__init__()
        self.path, self.x_0, self.x_1 = path, x_0, x_1
        self.dummy = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))

    def forward(self, x, k, y=None):
        return self.path.sample(self.x_0, self.x_1, k.to(torch.float64)).dx_k


def test_strip_states_bands_and_generated():
    T = FourierTransform((1, 8, 8), num_bands=3)
    path = KFlowPath(T, bump="linear")
    x_0 = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(7))  # the strip's noise (seed 7)
    x_1 = torch.randn(4, 1, 8, 8, dtype=torch.float64)
    s = band_strip(Exact(path, x_0.double(), x_1), path, n=4, steps=6, seed=7)
    torch.testing.assert_close(s.states[0].double(), x_0.double())
    torch.testing.assert_close(s.states[-1].double(), x_1, rtol=0, atol=1e-5)
    torch.testing.assert_close(s.bands.sum(0), s.states[-1], rtol=0, atol=1e-5)  # the bands add up to the sample
    torch.testing.assert_close(s.generated[-1], s.states[-1], rtol=0, atol=1e-5)
    for b in range(3):  # band b alone has no energy in the other bands
        e = T.band_energy(s.bands[b].double())
        assert (e[torch.arange(3) != b] < 1e-10).all() and e[b] > 0.1
    images, cols = s.grid("all")
    assert images.shape == (4 * 7, 1, 8, 8) and cols[-1] == "band 2 alone"
    torch.testing.assert_close(images[6], s.bands[2][0])  # row-major: sample 0, last column


def test_inspect_strip_of_a_band_scaled_run_is_in_image_scale(tmp_path):
    """`kflow inspect strip` maps the strip through the run's ToImage (here the band scale undone)."""
    from pathlib import Path

    import numpy as np
    from PIL import Image

    from kflow.cli.main import main
    from kflow.inspection import inspect_strip
    from kflow.runs import load_run
    from kflow.steering.guidance import classes_in_turn
    from kflow.viz.images import grid_image

    tiny = Path(__file__).resolve().parents[2] / "configs" / "digits_tiny.yaml"
    run_dir = tmp_path / "run"
    args = ["transform.band_scale=rms", "train.steps=2", "train.ckpt_every=2"]
    assert main(["train", str(tiny), f"out_dir={run_dir}", *args]) == 0
    inspect_strip(str(run_dir), tmp_path / "out", n=3, steps=4, seed=2)
    png = np.asarray(Image.open(tmp_path / "out" / "strip.png"))
    run = load_run(run_dir)
    assert run.scale is not None and not torch.allclose(run.scale.rms, torch.ones_like(run.scale.rms))
    s = band_strip(run.model, run.path, n=3, steps=4, seed=2, y=classes_in_turn(3, run.num_classes))
    images, _ = s.grid("all")
    expected = np.asarray(grid_image(run.to_image(images), 3, 3))
    raw = np.asarray(grid_image(images, 3, 3))
    np.testing.assert_array_equal(png, expected)
    assert (png.astype(int) - raw.astype(int)).any()  # the model-space rendering is not what was written
