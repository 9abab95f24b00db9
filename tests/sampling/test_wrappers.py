"""Velocity wrappers (kflow/sampling/wrappers.py)."""

import pytest
import torch

from kflow import FourierTransform, KFlowPath
from kflow.sampling.wrappers import BoundaryNudge


def test_boundary_nudge_moves_only_interior_boundaries():
    path = KFlowPath(FourierTransform((1, 8, 8), num_bands=3), allocation=[0.5, 0.3, 0.2])
    seen = []
    nudge = BoundaryNudge(lambda x, k: seen.append(k) or x, path, 0.1)
    k = torch.tensor([0.0, 0.5, 0.6, 0.8, 1.0], dtype=torch.float64)
    nudge(torch.zeros(5, 1, 8, 8), k)
    # 0.5 starts band 1 (width 0.3), 0.8 starts band 2 (width 0.2); k = 0 and k = 1 stay
    assert torch.allclose(seen[0], torch.tensor([0.0, 0.53, 0.6, 0.82, 1.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="nudge"):
        BoundaryNudge(lambda x, k: x, path, 1.5)
