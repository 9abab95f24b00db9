"""utils.devices: device names checked where they enter; the torchrun rule for joining a group."""

import subprocess

import pytest
import torch

from kflow.utils.devices import join_processes, pick_device
from kflow.utils.errors import ConfigError


@pytest.mark.parametrize(
    "name, msg", [("gpu", "is not a device"), ("meta", "runs on cpu or cuda"), ("cuda:99", "cuda")]
)
def test_bad_device_names_are_one_line(name, msg):
    if name == "cuda:99" and torch.cuda.is_available():
        msg = "there are only"
    with pytest.raises(ConfigError, match=msg):
        pick_device(name)


def test_cpu_and_auto():
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_outside_torchrun_one_process(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    p = join_processes("cpu")
    assert (p.rank, p.world, p.distributed, p.owns_group) == (0, 1, False, False)


def test_under_torchrun_a_gloo_group_of_two(tmp_path, torchrun):
    """Two real processes through torchrun join one gloo group and agree on its size."""
    script = tmp_path / "join.py"
    script.write_text(
        "import torch, torch.distributed as dist\n"
        "from kflow.utils.devices import join_processes\n"
        "p = join_processes('cpu')\n"
        "t = torch.ones(1)\n"
        "dist.all_reduce(t)\n"
        f"open(r'{tmp_path}/rank%d.txt' % p.rank, 'w').write(f'{{p.world}} {{int(t.item())}} {{p.owns_group}}')\n"
        "dist.destroy_process_group()\n"
    )
    res = subprocess.run(
        [*torchrun(2), str(script)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert [(tmp_path / f"rank{r}.txt").read_text() for r in (0, 1)] == ["2 2 True", "2 2 True"]
