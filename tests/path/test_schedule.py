"""BandSchedule: the path's schedule without a transform. The path answers from it exactly, the
model's k-embedding reads the same windows (the molecule configs too: tests/molecules/test_flow.py),
and a path refuses a schedule that does not fit its transform."""

import pytest
import torch

from kflow import BandSchedule, KFlowPath, WaveletTransform
from kflow.config import Config
from kflow.recipe import make_model

F64 = torch.float64


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"bump": "cosine", "order": "high_to_low", "allocation": [1.0, 2.0, 5.0]},
        {"bump": "smoothstep", "overlap": 0.4},
        {"windows": [[0.0, 1.0], [1 / 3, 1.0], [2 / 3, 1.0]]},
    ],
)
def test_schedule_alone_answers_as_the_path(kw):
    schedule = BandSchedule(3, **kw)
    path = KFlowPath(WaveletTransform((1, 16, 16), "haar", levels=2), **kw)
    k = torch.cat([torch.rand(50, dtype=F64), schedule.boundaries()])
    for name in ("started", "finished", "moving", "local_time", "active_band", "active_position"):
        assert torch.equal(getattr(schedule, name)(k), getattr(path, name)(k)), name
    for got, want in zip(schedule.amplitudes(k), path.amplitudes(k)):
        assert torch.equal(got, want)
    assert torch.equal(schedule.windows(), path.windows()) and torch.equal(schedule.kappa, path.kappa)
    # finished bands hold amplitude 1 and velocity 0; bands not started hold 0 and 0
    a, da = schedule.amplitudes(k)
    fin, st = schedule.finished(k), schedule.started(k)
    assert (a[fin] == 1).all() and (da[fin & (k[:, None] < 1)] == 0).all()
    assert (a[~st] == 0).all() and (da[~st] == 0).all()


def test_path_takes_a_schedule_and_refuses_a_mismatch():
    T = WaveletTransform((1, 16, 16), "haar", levels=2)
    schedule = BandSchedule(3, overlap=0.25)
    path = KFlowPath(T, schedule)
    assert path.schedule is schedule and path.overlap == 0.25
    with pytest.raises(ValueError, match="not both"):
        KFlowPath(T, schedule, bump="cosine")
    with pytest.raises(ValueError, match="2 bands but the transform 3"):
        KFlowPath(T, BandSchedule(2))
    with pytest.raises(AttributeError, match="no attribute 'kapa'"):
        path.kapa  # noqa: B018


def test_k_embedding_reads_the_paths_schedule():
    cfg = Config.from_dict(
        {"transform": {"name": "wavelet", "levels": 2}, "path": {"overlap": 0.3}, "model": {"k_embedding": "window"}}
    )
    path = KFlowPath(WaveletTransform((1, 16, 16), "db6", levels=2), BandSchedule(3, overlap=0.3))
    model = make_model(cfg, (1, 16, 16), 2, path)
    torch.testing.assert_close(model.k_emb.windows.double(), path.schedule.windows(), rtol=0, atol=1e-7)
