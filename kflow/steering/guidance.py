"""Class conditioning at sampling time, as velocity wrappers (never inside a solver).

Classifier-free guidance mixes the conditional and the unconditional (null class) velocity,
v = v_u + scale (v_c - v_u); condition dropping keeps the class only while k < keep_until and
samples the rest unconditionally (the paper drops it after the first 30% of k, i.e. once the
coarse bands that carry class identity are generated).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..models.embeddings import check_labels
from ..utils.tensors import append_dims


def null_label(model) -> int:
    n = getattr(getattr(model, "cfg", None), "num_classes", 0)
    if not n:
        raise ValueError(
            "this model is unconditional (num_classes=0): guidance and condition dropping need a "
            "class-conditional model (train with data.labels=true)"
        )
    return n


class ClassConditional:
    """velocity(x, k) of `model` for labels y (N,), guidance `scale` and class kept for k < keep_until.

    scale=1, keep_until=1 is the plain conditional model (one forward pass); the guided
    conditional and unconditional passes share one doubled batch."""

    def __init__(self, model, y: Tensor, scale: float = 1.0, keep_until: float = 1.0):
        if y is None:
            raise ValueError("class conditioning needs labels y")
        if not 0.0 <= keep_until <= 1.0:
            raise ValueError(f"keep_until={keep_until} must lie in [0, 1] (fraction of k with the class)")
        null = null_label(model)
        check_labels(y, null)
        self.model, self.y, self.scale, self.keep_until, self.null = model, y, float(scale), float(keep_until), null

    def __call__(self, x: Tensor, k: Tensor) -> Tensor:
        keep = k < self.keep_until  # (N,) which samples still see their class
        null = torch.full_like(self.y, self.null)
        if not keep.any():
            return self.model(x, k, null)
        y = torch.where(keep, self.y, null)
        if self.scale == 1.0:
            return self.model(x, k, y)
        v = self.model(torch.cat([x, x]), torch.cat([k, k]), torch.cat([y, null]))
        v_c, v_u = v.chunk(2)
        return torch.where(append_dims(keep, x.dim()), v_u + self.scale * (v_c - v_u), v_u)


def class_conditional(model, scale: float = 1.0, keep_until: float = 1.0):
    """The factory `sample(..., velocity_for=...)` takes: labels of each chunk -> ClassConditional."""
    return lambda y: ClassConditional(model, y, scale, keep_until)


def classes_in_turn(n: int, num_classes: int) -> Tensor | None:
    """(n,) labels 0, 1, .., C - 1, 0, 1, .. (a grid with one class per column); None when unconditional."""
    return torch.arange(n) % num_classes if num_classes else None


# Labels and guidance as a user asks for them (the CLI's --label, the studio's class field). The
# messages name no option: each caller says which of its own options to change.
def class_labels(label, n: int, num_classes: int) -> Tensor | None:
    """label: None (unconditional / null class), a class index, or 'all' / -1 (the classes in turn)."""
    if label is None:
        return None
    if num_classes == 0:
        raise ValueError("this run is unconditional (no classes): leave the class out")
    if label in ("all", -1):
        return classes_in_turn(n, num_classes)
    try:
        c = int(label)
    except ValueError:
        raise ValueError(f"{label!r} is not a class: give a class index or 'all'") from None
    y = torch.full((n,), c, dtype=torch.long)
    check_labels(y, num_classes)
    return y


def guided(model, y: Tensor | None, scale: float = 1.0, keep_until: float = 1.0):
    """The velocity factory for guidance and condition dropping, or None when neither is asked for.
    Both need labels (ValueError without them)."""
    if scale == 1.0 and keep_until >= 1.0:
        return None
    if y is None:
        raise ValueError("guidance and class dropping need a class on a class-conditional model")
    return class_conditional(model, scale, keep_until)
