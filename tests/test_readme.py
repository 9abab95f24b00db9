"""The README's Python example is the first code a user runs: it must keep working."""

import re
from pathlib import Path

import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) == 1, "README.md should hold exactly one Python example"
    scope: dict = {}
    exec(compile(blocks[0], str(README), "exec"), scope)
    assert scope["images"].shape == (16, 1, 32, 32)
    assert torch.isfinite(scope["images"]).all()
    assert torch.isfinite(scope["loss"])
