"""Run by torchrun in the DDP tests: train the tiny digits config, then each rank dumps its weights
(and the process group's backend). argv: out_dir dump_dir config [device, default cpu]."""

import sys

import torch.distributed as dist
from safetensors.torch import save_file

from kflow.config import load_config
from kflow.training import Trainer

out_dir, dump_dir = sys.argv[1], sys.argv[2]
device = sys.argv[4] if len(sys.argv) > 4 else "cpu"
cfg = load_config(
    sys.argv[3],
    [f"out_dir={out_dir}", "train.steps=6", "train.ckpt_every=3", f"train.device={device}", "train.amp=none"],
)
trainer = Trainer(cfg)
trainer.fit()
rank = dist.get_rank()
save_file(
    {k: v.contiguous().cpu() for k, v in trainer.model.state_dict().items()},
    f"{dump_dir}/rank{rank}.safetensors",
    metadata={"backend": str(dist.get_backend())},
)
dist.destroy_process_group()
