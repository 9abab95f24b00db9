"""Run by torchrun in test_ddp: train the tiny digits config, then each rank dumps its weights."""
import sys

import torch
import torch.distributed as dist
from safetensors.torch import save_file

from kflow.config import load_config
from kflow.training import Trainer

out_dir, dump_dir = sys.argv[1], sys.argv[2]
cfg = load_config(sys.argv[3], [f"out_dir={out_dir}", "train.steps=6", "train.ckpt_every=3", "train.device=cpu"])
trainer = Trainer(cfg)
trainer.fit()
rank = dist.get_rank()
save_file({k: v.contiguous() for k, v in trainer.model.state_dict().items()}, f"{dump_dir}/rank{rank}.safetensors")
dist.destroy_process_group()
