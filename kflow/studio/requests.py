"""The studio's requests: JSON dicts from the page, validated field by field into dataclasses.

A RequestError names the field and the fix; the page shows it as one line. REQUESTS is the one
dispatch table: the server parses with it and the engine runs the request by its `kind`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

from ..sampling.solvers import EVALS_PER_STEP  # the fixed-step solvers the page offers
from ..steering.degradations import TASKS
from ..utils.errors import KFlowError


class RequestError(KFlowError, ValueError):
    """A request the studio cannot do as given; the message is shown on the page."""


def _get(d: dict, name: str, kind, default, lo=None, hi=None, choices=None):
    v = d.get(name, default)
    if v is None or v == "":
        return default
    try:
        if kind is int and (isinstance(v, bool) or (isinstance(v, float) and not v.is_integer())):
            raise ValueError
        v = kind(v)
    except (TypeError, ValueError):
        raise RequestError(f"{name}={v!r} is not {'a whole number' if kind is int else 'a number'}") from None
    if kind is float and not math.isfinite(v):
        raise RequestError(f"{name}={v} must be a finite number")
    if choices is not None and v not in choices:
        raise RequestError(f"{name}={v!r}: use one of {', '.join(map(str, choices))}")
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise RequestError(f"{name}={v} must lie in [{lo}, {hi}]")
    return v


def _flag(d: dict, name: str, default: bool) -> bool:
    """A JSON true/false (or the strings "true"/"false"); anything else is refused, never read as truthy."""
    v = d.get(name, default)
    if isinstance(v, str) and v.lower() in ("true", "false"):
        return v.lower() == "true"
    if not isinstance(v, bool):
        raise RequestError(f"{name}={v!r} must be true or false")
    return v


def _bands(d: dict, name: str, num_bands: int) -> list[int]:
    v = d.get(name) or []
    if not isinstance(v, list) or not all(isinstance(b, int) and not isinstance(b, bool) for b in v):
        raise RequestError(f"{name} must be a list of band numbers")
    bad = [b for b in v if not 0 <= b < num_bands]
    if bad:
        raise RequestError(f"{name}: band(s) {bad} do not exist; this run has bands 0..{num_bands - 1}")
    return sorted(set(v))


def _job_id(d: dict, name: str) -> str | None:
    v = d.get(name) or None
    if v is not None and not (isinstance(v, str) and v.isascii() and v.isalnum() and len(v) <= 32):
        raise RequestError(f"{name} must be the id of an earlier job (like j3); got {str(v)[:40]!r}")
    return v


@dataclass
class GenerateRequest:
    kind: ClassVar[str] = "generate"
    n: int = 8
    seed: int = 0
    steps: int = 20
    solver: str = "euler"
    label: int | None = None  # a class, -1 for the classes in turn, None for unconditional
    guidance: float = 1.0
    keep_class_until: float = 1.0
    keep_bands: list[int] = field(default_factory=list)  # bands whose noise comes from keep_from
    keep_from: str | None = None  # the job whose noise is kept

    @classmethod
    def parse(cls, d: dict, num_bands: int) -> GenerateRequest:
        r = cls(
            n=_get(d, "n", int, 8, 1, 64),
            seed=_get(d, "seed", int, 0, 0, 2**31 - 1),
            steps=_get(d, "steps", int, 20, 1, 1000),
            solver=_get(d, "solver", str, "euler", choices=tuple(EVALS_PER_STEP)),
            label=_get(d, "label", int, None, -1, 10**6),
            guidance=_get(d, "guidance", float, 1.0, 0.0, 20.0),
            keep_class_until=_get(d, "keep_class_until", float, 1.0, 0.0, 1.0),
            keep_bands=_bands(d, "keep_bands", num_bands),
            keep_from=_job_id(d, "keep_from"),
        )
        if r.keep_bands and not r.keep_from:
            raise RequestError("keep_bands needs keep_from: generate a batch first, then keep its bands")
        return r


@dataclass
class ImageSource:
    """An uploaded file (bytes) or the index of an image of the run's test split."""

    upload: bytes | None = None
    test_index: int | None = None

    @classmethod
    def parse(cls, d, name: str, required: bool = True) -> ImageSource | None:
        import base64
        import binascii

        d = d or {}
        if not isinstance(d, dict):
            raise RequestError(f"{name} must be an object with an upload or a test_index; got {str(d)[:40]!r}")
        if d.get("upload"):
            data = d["upload"]
            data = data.split(",", 1)[1] if isinstance(data, str) and data.startswith("data:") else data
            try:
                return cls(upload=base64.b64decode(data, validate=True))
            except (binascii.Error, TypeError, ValueError):
                raise RequestError(f"{name}: the upload did not arrive as base64 data; upload the file again") from None
        if d.get("test_index") not in (None, ""):
            return cls(test_index=_get(d, "test_index", int, 0, 0, 10**7))
        if required:
            raise RequestError(f"{name}: upload an image or pick a test image")
        return None


@dataclass
class EditRequest:
    kind: ClassVar[str] = "edit"
    image: ImageSource
    donor: ImageSource | None = None
    keep_bands: list[int] = field(default_factory=lambda: [0])
    n: int = 4
    seed: int = 0
    steps: int = 20
    solver: str = "rk4"
    label: int | None = None

    @classmethod
    def parse(cls, d: dict, num_bands: int) -> EditRequest:
        keep = _bands(d, "keep_bands", num_bands) if "keep_bands" in d else [0]
        if not keep:
            raise RequestError("keep_bands: keep at least one band of the image (else nothing of it is left)")
        return cls(
            image=ImageSource.parse(d.get("image"), "image"),
            donor=ImageSource.parse(d.get("donor"), "second image", required=False),
            keep_bands=keep,
            n=_get(d, "n", int, 4, 1, 16),
            seed=_get(d, "seed", int, 0, 0, 2**31 - 1),
            steps=_get(d, "steps", int, 20, 1, 1000),
            solver=_get(d, "solver", str, "rk4", choices=tuple(EVALS_PER_STEP)),
            label=_get(d, "label", int, None, 0, 10**6),
        )


@dataclass
class RestoreRequest:
    kind: ClassVar[str] = "restore"
    image: ImageSource
    task: str = "sr_box"
    factor: int = 2
    sigma: float = 1.0
    noise: float = 0.0
    observed: bool = False  # the image is the degraded observation itself (no original to compare to)
    n: int = 4
    seed: int = 0
    steps: int = 50

    @classmethod
    def parse(cls, d: dict, num_bands: int = 0) -> RestoreRequest:
        r = cls(
            image=ImageSource.parse(d.get("image"), "image"),
            task=_get(d, "task", str, "sr_box", choices=TASKS),
            factor=_get(d, "factor", int, 2, 1, 16),
            sigma=_get(d, "sigma", float, 1.0, 0.1, 8.0),
            noise=_get(d, "noise", float, 0.0, 0.0, 1.0),
            observed=_flag(d, "observed", False),
            n=_get(d, "n", int, 4, 1, 16),
            seed=_get(d, "seed", int, 0, 0, 2**31 - 1),
            steps=_get(d, "steps", int, 50, 1, 1000),
        )
        if r.observed and r.task == "inpaint":
            raise RequestError("inpainting takes the clean image (the centre is masked); untick 'already degraded'")
        return r


# kind -> request class; every class has parse(body, num_bands) and the engine a method of that name
REQUESTS = {r.kind: r for r in (GenerateRequest, EditRequest, RestoreRequest)}
