"""A dataset classifier whose penultimate features stand in for Inception features (no
Inception weights can be downloaded here). Saved as safetensors with its test accuracy."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class ClassifierInfo:
    dataset: str
    in_channels: int
    image_size: int
    num_classes: int
    width: int = 32
    feature_dim: int = 128
    test_accuracy: float | None = None
    epochs: int = 0


class FeatureClassifier(nn.Module):
    def __init__(self, info: ClassifierInfo):
        super().__init__()
        self.info = info
        w = info.width

        def block(cin, cout):
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, padding=1),
                nn.BatchNorm2d(cout),
                nn.ReLU(),
                nn.Conv2d(cout, cout, 3, padding=1),
                nn.BatchNorm2d(cout),
                nn.ReLU(),
            )

        self.body = nn.Sequential(
            block(info.in_channels, w),
            nn.MaxPool2d(2),
            block(w, 2 * w),
            nn.MaxPool2d(2),
            block(2 * w, 4 * w),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(4 * w, info.feature_dim),
            nn.ReLU(),
        )
        self.head = nn.Linear(info.feature_dim, info.num_classes)

    def features(self, x: Tensor) -> Tensor:
        """(N, C, H, W) in [-1, 1] -> (N, feature_dim) penultimate activations."""
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))

    @torch.no_grad()
    def embed(self, x: Tensor, batch_size: int = 500, device="cpu") -> Tensor:
        self.eval()
        return torch.cat([self.features(x[i : i + batch_size].to(device)).cpu() for i in range(0, len(x), batch_size)])

    @torch.no_grad()
    def predict(self, x: Tensor, batch_size: int = 500, device="cpu") -> Tensor:
        self.eval()
        return torch.cat([self(x[i : i + batch_size].to(device)).argmax(1).cpu() for i in range(0, len(x), batch_size)])

    def save(self, path: str | Path) -> None:
        from safetensors.torch import save_file

        from ..utils.atomic import atomic_write

        tensors = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        atomic_write(
            path, lambda tmp: save_file(tensors, str(tmp), metadata={"classifier": json.dumps(asdict(self.info))})
        )

    @classmethod
    def load(cls, path: str | Path) -> FeatureClassifier:
        from ..utils.atomic import open_safetensors
        from ..utils.checkpoint import load_state

        with open_safetensors(path) as f:
            meta = (f.metadata() or {}).get("classifier")
            if meta is None:
                raise ValueError(f"{path} is not a kflow classifier; train one with `kflow eval train-classifier`")
            state = {k: f.get_tensor(k) for k in f.keys()}
        model = cls(ClassifierInfo(**json.loads(meta)))
        load_state(model, state, "classifier")
        return model.eval()


def train_classifier(
    dataset: str,
    out: str | Path,
    epochs: int = 3,
    batch_size: int = 128,
    lr: float = 2e-3,
    image_size: int | None = 32,
    root: str | None = None,
    seed: int = 0,
    limit: int | None = None,
    device="cpu",
    log=print,
) -> FeatureClassifier:
    """Train on the training split with light augmentation (random shifts), report test accuracy."""
    from ..data import load_dataset

    train = load_dataset(dataset, "train", root, image_size, limit=limit)
    test = load_dataset(dataset, "test", root, image_size)
    if train.y is None or train.num_classes < 2:
        raise ValueError(f"dataset {dataset} has no labels; the feature classifier needs a labelled dataset")
    torch.manual_seed(seed)
    info = ClassifierInfo(dataset, train.x.shape[1], train.x.shape[-1], train.num_classes)
    model = FeatureClassifier(info).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * ((len(train) + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    g = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(train), generator=g)
        for i in range(0, len(train), batch_size):
            idx = perm[i : i + batch_size]
            x, y = train.x[idx], train.y[idx]
            shift = torch.randint(-2, 3, (2,), generator=g).tolist()
            x = torch.roll(x, shifts=shift, dims=(-2, -1))
            loss = F.cross_entropy(model(x.to(device)), y.to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        acc = (model.predict(test.x, device=device) == test.y).float().mean().item()
        log(f"epoch {epoch + 1}/{epochs}: loss {loss.item():.3f}, test accuracy {acc:.4f}")
    model.info.test_accuracy, model.info.epochs = acc, epochs
    model.cpu().save(out)
    return model
