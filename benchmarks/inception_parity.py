"""Parity of kflow's Inception-v3 FID network with pytorch-fid's (FIDInceptionV3), same random
weights, on this machine. Not a test: it needs pytorch-fid and torchvision, which kflow does not
depend on. Run it as

    pip install --no-deps --target /tmp/fidref pytorch-fid==0.3.0 "torchvision==0.28.*"
    .venv/bin/python benchmarks/inception_parity.py /tmp/fidref

torchvision's C++ ops need a matching CUDA/CPU build; only its Python model code is used here, so
its fake-op registration is skipped.
"""

import sys
import tempfile

import torch

sys.path.insert(0, sys.argv[1] if len(sys.argv) > 1 else "/tmp/fidref")
import torch.library

torch.library.register_fake = lambda *a, **k: lambda f: f  # see above
import pytorch_fid.inception as pi
from safetensors.torch import save_file

from kflow.metrics.inception import InceptionFeatures

torch.manual_seed(0)
# a randomly initialised FID Inception with pytorch-fid's own structure (no download)
m = pi._inception_v3(num_classes=1008, aux_logits=False, weights=None)
for n, blk in [
    ("Mixed_5b", pi.FIDInceptionA(192, 32)),
    ("Mixed_5c", pi.FIDInceptionA(256, 64)),
    ("Mixed_5d", pi.FIDInceptionA(288, 64)),
    ("Mixed_6b", pi.FIDInceptionC(768, 128)),
    ("Mixed_6c", pi.FIDInceptionC(768, 160)),
    ("Mixed_6d", pi.FIDInceptionC(768, 160)),
    ("Mixed_6e", pi.FIDInceptionC(768, 192)),
    ("Mixed_7b", pi.FIDInceptionE_1(1280)),
    ("Mixed_7c", pi.FIDInceptionE_2(2048)),
]:
    setattr(m, n, blk)
state = m.state_dict()
g = torch.Generator().manual_seed(1)
for k, v in state.items():  # non-trivial BN statistics so that every layer matters
    if k.endswith("running_var"):
        v.copy_(torch.rand(v.shape, generator=g) + 0.5)
    elif k.endswith("running_mean"):
        v.copy_(torch.randn(v.shape, generator=g) * 0.1)
    elif k.endswith("bn.weight"):
        v.copy_(torch.rand(v.shape, generator=g) + 0.5)
    elif k.endswith("bn.bias"):
        v.copy_(torch.randn(v.shape, generator=g) * 0.1)
pi.load_state_dict_from_url = lambda *a, **k: state
ref = pi.InceptionV3([3], resize_input=True, normalize_input=True, use_fid_inception=True).eval()
with tempfile.TemporaryDirectory() as d:
    save_file({k: v.contiguous() for k, v in state.items()}, f"{d}/w.safetensors")
    ours = InceptionFeatures.load(f"{d}/w.safetensors")
x = torch.rand(4, 3, 32, 32)
with torch.no_grad():
    a = ref(x)[0].flatten(1)
    b = ours(x * 2 - 1)
print("pytorch-fid vs kflow features: max abs diff", (a - b).abs().max().item(), "scale", a.abs().mean().item())
xg = torch.rand(2, 1, 28, 28)
with torch.no_grad():
    a = ref(xg.expand(-1, 3, -1, -1))[0].flatten(1)
    b = ours(xg * 2 - 1)
print("grey:", (a - b).abs().max().item())
