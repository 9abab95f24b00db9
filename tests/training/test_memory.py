"""The trainer's memory check: the estimate follows a real forward + backward, and a batch that
cannot fit is refused in one line before the first step (instead of the OOM killer's silence)."""

import re
import subprocess
import sys
from pathlib import Path

from kflow.cli.main import main
from kflow.config import load_config
from kflow.recipe import make_model, make_path, make_transform
from kflow.training.memory import PEAK_OVER_LEAF_OUTPUTS, activation_bytes_per_sample, available_bytes

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "digits_tiny.yaml"

MEASURE = """
import resource, torch
from kflow.config import load_config
from kflow.recipe import make_model, make_path, make_transform
from kflow.training.memory import activation_bytes_per_sample
torch.manual_seed(0)
cfg = load_config({cfg!r}, [])
T = make_transform(cfg, (1, 8, 8)); m = make_model(cfg, (1, 8, 8), 10, make_path(cfg, T))
leaf = activation_bytes_per_sample(m, (1, 8, 8), 10)
B = 3000
x, k, y = torch.randn(B, 1, 8, 8), torch.rand(B), torch.zeros(B, dtype=torch.long)
r0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
m(x, k, y).pow(2).mean().backward()
r1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print((r1 - r0) * 1024 / B / leaf)
"""


def test_estimate_follows_a_real_step():
    """Peak memory growth of a real forward + backward over the leaf-output sum: the constant the
    check uses must stay at or below it (never refuse what fits), and not far below."""
    code = MEASURE.format(cfg=str(TINY))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    ratio = float(out.stdout.strip())
    assert PEAK_OVER_LEAF_OUTPUTS <= ratio * 1.05 and ratio < 2.5 * PEAK_OVER_LEAF_OUTPUTS, ratio


def test_leaf_outputs_scale_with_the_image():
    cfg = load_config(TINY, [])
    sizes = []
    for s in (8, 16):
        shape = (1, s, s)
        T = make_transform(cfg, shape)
        sizes.append(activation_bytes_per_sample(make_model(cfg, shape, 10, make_path(cfg, T)), shape, 10))
    assert 3 < sizes[1] / sizes[0] < 4.5  # a conv net's activations grow about with the pixels


def test_a_batch_that_cannot_fit_is_refused_before_the_first_step(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["train", str(TINY), f"out_dir={out}", "train.batch_size=100000000"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "train.batch_size=100000000 needs about" in err, err
    suggested = int(re.search(r"use train.batch_size=(\d+) or less", err).group(1))
    assert 1 <= suggested < 100000000
    assert not (out / "checkpoints").exists() and available_bytes() is not None
