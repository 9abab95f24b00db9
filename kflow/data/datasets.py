"""Datasets as in-memory tensors: images (N, C, H, W) in [-1, 1], labels (N,) or None.

Sources: sklearn digits (8x8, bundled), Fashion-MNIST (idx files), any image folder (one
subfolder per class gives labels), and .npz arrays. Images are padded (with the background
value -1) or resized to `image_size`.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import urllib.request
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..utils.atomic import atomic_write_bytes
from ..utils.errors import DataError
from .image_data import ImageData, from_uint8, images_to_model_range, labels_to_long
from .image_files import IMAGE_SUFFIXES, read_image

FASHION_MNIST_DEBIAN = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
# sha256 of the decompressed idx files (the same bytes whatever the gzip wrapper)
FASHION_MNIST_SHA256 = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
FASHION_MNIST_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
DATASETS = ("digits", "fashion_mnist", "folder", "npz", "latents")


def fit_size(x: Tensor, size: int | None) -> Tensor:
    """Pad (background -1, centred) when smaller, bilinear-resize when larger or not square."""
    if size is None:
        return x
    H, W = x.shape[-2:]
    if H <= size and W <= size:
        top, left = (size - H) // 2, (size - W) // 2
        return torch.nn.functional.pad(x, (left, size - W - left, top, size - H - top), value=-1.0)
    return torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def _check_finite(x: Tensor, where: str) -> None:
    if not torch.isfinite(x).all():
        raise DataError(f"{where} contains NaN or Inf values; clean the data before training")


SPLIT_DATASETS = ("digits", "fashion_mnist")  # the datasets with a held-out test split


def load_digits(split: str = "train") -> ImageData:
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    x = torch.from_numpy(d.images).float()[:, None] / 16.0 * 2 - 1  # (1797, 1, 8, 8)
    y = torch.from_numpy(d.target).long()
    idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    cut = int(0.85 * len(x))
    idx = idx[:cut] if split == "train" else idx[cut:]
    return ImageData(x[idx], y[idx], 10, "digits")


def _read_idx(path: Path) -> tuple[np.ndarray, bytes]:
    """An idx file (gzipped or not) as a uint8 array and its raw bytes; anything else is one line."""
    fix = "reinstall dataset-fashion-mnist, or point KFLOW_DATA at a folder with the four official files"
    try:
        raw = gzip.open(path, "rb").read() if path.suffix == ".gz" else path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path} is missing; {fix}") from None
    except (OSError, EOFError) as e:  # not gzip, truncated gzip
        raise DataError(f"{path} cannot be read ({e}); {fix}") from None
    if len(raw) < 4 or raw[:3] != b"\x00\x00\x08" or not 1 <= raw[3] <= 4:
        raise DataError(f"{path} is not an idx file of bytes; {fix}")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    if len(raw) != 4 + 4 * ndim + math.prod(dims):
        raise DataError(f"{path} is truncated or padded (header says {dims}); {fix}")
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims), raw


def fashion_mnist_root() -> Path | None:
    env = os.environ.get("KFLOW_DATA")
    if env and Path(env).exists() and not Path(env).is_dir():  # a missing folder is where downloads go
        raise DataError(f"KFLOW_DATA={env} is a file, not a folder; point it at the folder holding the dataset files")
    for root in [env, FASHION_MNIST_DEBIAN]:
        if root:
            for cand in (Path(root), Path(root) / "fashion-mnist", Path(root) / "fashion_mnist"):
                if (cand / "train-images-idx3-ubyte.gz").exists() or (cand / "train-images-idx3-ubyte").exists():
                    return cand
    return None


def download_fashion_mnist(dest: Path) -> Path:
    """The official files, verified by sha256 of their content; a one-line error if offline."""
    dest.mkdir(parents=True, exist_ok=True)
    for name, sha in FASHION_MNIST_SHA256.items():
        target = dest / f"{name}.gz"
        if target.exists():
            continue
        try:
            data = urllib.request.urlopen(FASHION_MNIST_URL + f"{name}.gz", timeout=20).read()
        except OSError as e:
            raise DataError(
                f"Fashion-MNIST is not installed and cannot be downloaded ({e.__class__.__name__}); install the "
                "Debian package dataset-fashion-mnist (apt-get install dataset-fashion-mnist) or put the four idx "
                "files in a folder named by KFLOW_DATA"
            ) from None
        if hashlib.sha256(gzip.decompress(data)).hexdigest() != sha:
            raise DataError(f"downloaded {name}.gz fails its checksum; delete {dest} and retry")
        atomic_write_bytes(target, data)  # fsynced, then renamed: a kill never leaves a torn .gz
    return dest


def load_fashion_mnist(split: str = "train", download: bool = True) -> ImageData:
    root = fashion_mnist_root()
    if root is None:
        if not download:
            raise DataError(
                "Fashion-MNIST not found; apt-get install dataset-fashion-mnist, or set KFLOW_DATA "
                "to a folder with the idx files"
            )
        root = download_fashion_mnist(
            Path(os.environ.get("KFLOW_DATA", Path.home() / ".cache" / "kflow")) / "fashion-mnist"
        )
    prefix = "train" if split == "train" else "t10k"
    files = []
    for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"):
        p = root / f"{prefix}-{kind}.gz"
        files.append(p if p.exists() else root / f"{prefix}-{kind}")
    images, raw = _read_idx(files[0])
    if hashlib.sha256(raw).hexdigest() != FASHION_MNIST_SHA256[f"{prefix}-images-idx3-ubyte"]:
        raise DataError(f"{files[0]} does not match the official Fashion-MNIST checksum; reinstall it")
    labels, raw = _read_idx(files[1])
    if hashlib.sha256(raw).hexdigest() != FASHION_MNIST_SHA256[f"{prefix}-labels-idx1-ubyte"]:
        raise DataError(f"{files[1]} does not match the official Fashion-MNIST checksum; reinstall it")
    x = from_uint8(images[:, None])
    return ImageData(x, torch.from_numpy(labels.astype(np.int64)), 10, "fashion_mnist")


def load_npz(path: str | Path) -> ImageData:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} does not exist; give the path of an .npz with an 'x' (or 'images') array")
    try:
        with np.load(path, allow_pickle=False) as f:
            key = next((k for k in ("x", "images", "samples") if k in f), None)
            if key is None:
                raise DataError(f"{path} has arrays {list(f.keys())} but no 'x' or 'images'; save the images under 'x'")
            x = np.asarray(f[key])
            y = next((np.asarray(f[k]) for k in ("y", "labels") if k in f), None)
    except ValueError as e:  # numpy: object arrays need pickle, which kflow never loads
        if "allow_pickle" not in str(e):
            raise DataError(f"{path} is not a readable .npz ({e}); save it with numpy.savez") from None
        raise DataError(
            f"{path} holds an object array (it would need pickle to load, which kflow never does); "
            "save numeric arrays (uint8 or float images) with numpy.savez"
        ) from None
    except (OSError, EOFError) as e:
        raise DataError(f"{path} is not a readable .npz ({type(e).__name__}); save it with numpy.savez") from None
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or len(x) == 0:
        raise DataError(f"{path}: images must be (N, C, H, W) or (N, H, W) with N > 0, got {x.shape}")
    if x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):  # NHWC
        x = x.transpose(0, 3, 1, 2)
    xt = images_to_model_range(x, str(path))  # the dtype/range rule (image_data.py)
    yt = None if y is None else labels_to_long(y, len(xt), str(path))
    return ImageData(xt, yt, int(yt.max()) + 1 if yt is not None else 0, path.stem)


def load_folder(path: str | Path, channels: int = 1) -> ImageData:
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"image folder {path} does not exist; check data.root")
    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found under {path}")
    classes = sorted({p.parent.name for p in files}) if all(p.parent != path for p in files) else []
    arrays, sizes = [], set()
    for p in files:
        a = read_image(p, f"image {p}", channels)
        sizes.add(a.shape[1:])
        arrays.append(images_to_model_range(a[None], str(p)))
    if len(sizes) > 1:
        raise DataError(f"images under {path} have mixed sizes {sorted(sizes)[:4]}; resize them to one size first")
    y = torch.tensor([classes.index(p.parent.name) for p in files]) if classes else None
    return ImageData(torch.cat(arrays), y, len(classes), path.name)


def load_dataset(
    name: str,
    split: str = "train",
    root: str | None = None,
    image_size: int | None = None,
    channels: int = 1,
    limit: int | None = None,
) -> ImageData:
    """`split` (train or test) applies to the named datasets; npz, folder and latents are one set."""
    if name in SPLIT_DATASETS and split not in ("train", "test"):
        raise DataError(f"{name} has the splits train and test; got split {split!r}")
    if name == "digits":
        data = load_digits(split)
    elif name == "fashion_mnist":
        data = load_fashion_mnist(split)
    elif name == "npz":
        if not root:
            raise DataError("data.name=npz needs data.root=<file.npz>")
        data = load_npz(root)
    elif name == "folder":
        if not root:
            raise DataError("data.name=folder needs data.root=<image folder>")
        data = load_folder(root, channels)
    elif name == "latents":  # scaled VAE latents from `kflow data encode`: no padding or resizing
        from .latents import load_latents

        if not root:
            raise DataError("data.name=latents needs data.root=<folder written by kflow data encode>")
        data = load_latents(root)
        if image_size not in (None, data.x.shape[-1]):
            raise DataError(
                f"data.image_size={image_size} but the latents are {data.x.shape[-1]}x{data.x.shape[-1]}; "
                "leave data.image_size unset for latents"
            )
        image_size = None
    else:
        raise DataError(f"unknown dataset {name!r}; use one of {', '.join(DATASETS)}")
    if len(data) == 0:
        raise DataError(f"dataset {name} ({split}) is empty")
    if limit:
        data = ImageData(data.x[:limit], None if data.y is None else data.y[:limit], data.num_classes, data.name)
    _check_finite(data.x, f"dataset {name}")
    return ImageData(fit_size(data.x, image_size).contiguous(), data.y, data.num_classes, data.name)


def load_images(source: str, shape, limit: int | None = None, exact_size: bool = False) -> Tensor:
    """Images for editing/restoration, as (N, *shape) in [-1, 1]: an .npz, one image file, a folder
    of images, or a dataset split written NAME:SPLIT (e.g. fashion_mnist:test); at most `limit`."""
    C, H, _ = shape
    p = Path(source)
    if p.suffix == ".npz":
        x = load_npz(p).x
    elif p.is_dir():
        x = load_folder(p, C).x
    elif p.suffix.lower() in IMAGE_SUFFIXES:
        if not p.is_file():
            raise DataError(f"image {p} does not exist")
        x = images_to_model_range(read_image(p, f"image {p}", C)[None], str(p))
    elif ":" in source and source.split(":")[0] in DATASETS:
        name, split = source.split(":", 1)
        x = load_dataset(name, split, image_size=None if exact_size else H, limit=limit).x
    else:
        raise DataError(
            f"{source}: give an .npz, an image file, an image folder or NAME:SPLIT (e.g. fashion_mnist:test)"
        )
    x = x[:limit] if limit else x
    if x.shape[1] != C:
        raise DataError(f"{source} has {x.shape[1]} channel(s); the model takes {C}")
    _check_finite(x, source)
    if exact_size and tuple(x.shape[-2:]) != tuple(shape[-2:]):
        raise DataError(
            f"{source} holds {x.shape[-2]}x{x.shape[-1]} images; these observations must be "
            f"{shape[-2]}x{shape[-1]} for this model and degradation (they are never resized)"
        )
    if tuple(x.shape[-2:]) != (H, H):  # said, never silent: the model sees other pixels than the file's
        how = "padded with the background value -1" if max(x.shape[-2:]) <= H else "resized (bilinear)"
        print(f"note: {source} holds {x.shape[-2]}x{x.shape[-1]} images; {how} to the model's {H}x{H}")
    return fit_size(x, H).contiguous()
