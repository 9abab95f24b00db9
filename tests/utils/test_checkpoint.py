"""utils.checkpoint: save and load bit for bit, the newest sound checkpoint, one-line refusals."""

import copy

import pytest
import torch

from kflow.utils.checkpoint import (
    CheckpointError,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    load_latest_checkpoint,
    load_optimizer,
    load_state,
    save_checkpoint,
)


def trained():
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model(torch.randn(4, 3)).pow(2).mean().backward()
    opt.step()
    return model, opt


def test_round_trip_is_bit_identical(tmp_path):
    model, opt = trained()
    ema = torch.nn.Linear(3, 2)
    path = tmp_path / "ckpt-00000007.safetensors"
    save_checkpoint(path, model, ema, opt, {"step": 7})
    ck = load_checkpoint(path)
    assert ck.meta["step"] == 7 and ck.path == path
    m2, o2 = torch.nn.Linear(3, 2), None
    load_state(m2, ck.state("model"), "model")
    for a, b in zip(model.state_dict().values(), m2.state_dict().values()):
        assert torch.equal(a, b)
    o2 = torch.optim.AdamW(m2.parameters(), lr=1e-2)
    load_optimizer(o2, ck.state("optim"), ck.meta["optimizer"])
    for s1, s2 in zip(opt.state.values(), o2.state.values()):
        assert torch.equal(s1["exp_avg"], s2["exp_avg"]) and torch.equal(s1["exp_avg_sq"], s2["exp_avg_sq"])


def test_a_corrupted_newest_checkpoint_is_skipped(tmp_path):
    model, opt = trained()
    for step in (1, 2):
        save_checkpoint(tmp_path / f"ckpt-{step:08d}.safetensors", model, copy.deepcopy(model), opt, {"step": step})
    assert [p.name for p in list_checkpoints(tmp_path)] == ["ckpt-00000001.safetensors", "ckpt-00000002.safetensors"]
    newest = latest_checkpoint(tmp_path)
    data = bytearray(newest.read_bytes())
    data[-5] ^= 0xFF  # a flipped byte in the weights
    newest.write_bytes(bytes(data))
    with pytest.raises(CheckpointError):
        load_checkpoint(newest)
    assert load_latest_checkpoint(tmp_path).meta["step"] == 1


def test_weights_of_another_shape_are_refused_in_one_line(tmp_path):
    model, opt = trained()
    save_checkpoint(tmp_path / "ckpt-00000001.safetensors", model, copy.deepcopy(model), opt, {"step": 1})
    ck = load_checkpoint(tmp_path / "ckpt-00000001.safetensors")
    with pytest.raises(CheckpointError) as e:
        load_state(torch.nn.Linear(4, 2), ck.state("model"), "model")
    assert "\n" not in str(e.value)
