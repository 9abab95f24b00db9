"""Crash-safe file writing and pickle-free reading.

A write goes to a temp file in the same folder, is fsynced, then renamed over the target: a
kill at any moment leaves either the old file or the new one, never a torn one.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes, read in 4 MiB blocks (shards and splits can be large)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def disk_full(e: BaseException) -> bool:
    """A full disk or quota, also as safetensors reports it (its own error type, not OSError)."""
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return type(e).__name__ == "SafetensorError" and ("StorageFull" in str(e) or "No space" in str(e))


def disk_full_message(path: Path) -> str:
    try:
        free = f"{shutil.disk_usage(path.parent).free / 2**20:.0f} MiB free there"
    except OSError:
        free = "free space unknown"
    return (
        f"No space left on device while writing {path} ({free}); free space and rerun (training, "
        "sampling and encoding continue where they stopped; nothing finished is lost)"
    )


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; files get the user's usual mode
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if disk_full(e):  # one message for every writer: which file, how much room, what to do
            raise OSError(errno.ENOSPC, disk_full_message(path), str(path)) from None
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def write_together(writers: dict[Path, Callable[[Path], None]]) -> None:
    """Files that belong together (a picture and its arrays): all are written to temporary names
    first, and only when every one is written do they replace the old set. A failure while writing
    leaves the old set untouched; the old set is removed before the new one moves in, so no reader
    ever finds one file of each."""
    staged = {}
    try:
        for path, write in writers.items():
            path = Path(path)
            atomic_write(path.with_name(f".{path.name}.new"), write)
            staged[path] = path.with_name(f".{path.name}.new")
    except BaseException:
        for tmp in staged.values():
            tmp.unlink(missing_ok=True)
        raise
    for path in staged:
        path.unlink(missing_ok=True)
    for path, tmp in staged.items():
        os.replace(tmp, path)


# every temp name a killed writer can leave: atomic_write's `.NAME.XXXX.tmp`, write_together's
# staged `.NAME.new` (and the `..NAME.new.XXXX.tmp` of the one it was writing), and safetensors'
# own `.tmpXXXXXX`, whose name does not carry the target's (so it is removed whatever the prefix)
def _temp_patterns(prefix: str) -> tuple[str, ...]:
    return (f".{prefix}*.tmp", f"..{prefix}*.new.*.tmp", f".{prefix}*.new", ".tmp??????")


def temp_files(folder: str | Path, prefix: str = "") -> list[Path]:
    """The temp files of killed writers in `folder` whose target name starts with `prefix`."""
    folder = Path(folder)
    return sorted({p for pattern in _temp_patterns(prefix) for p in folder.glob(pattern) if p.is_file()})


def remove_temp_files(folder: str | Path, prefix: str = "") -> list[Path]:
    """Remove temp_files(folder, prefix). Only for a caller that knows no writer is active in `folder`."""
    stale = temp_files(folder, prefix)
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_json(path: str | Path, obj) -> None:
    text = json.dumps(obj, indent=2, sort_keys=True) + "\n"
    atomic_write(path, lambda tmp: tmp.write_text(text))


def atomic_write_npz(path: str | Path, arrays: dict) -> None:
    """An uncompressed .npz of named arrays (np.savez through a closed handle: given a bare path it
    would append '.npz' to the temp name)."""
    import numpy as np

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    atomic_write(path, write)


@contextlib.contextmanager
def open_safetensors(path: str | Path):
    """safe_open with one-line errors for missing, pickled or corrupted files."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; check the path")
    with open(path, "rb") as f:
        head = f.read(8)
    if head[:2] in (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05") or head[:2] == b"PK":
        raise ValueError(
            f"{path} is a pickle/zip file (torch.save); kflow loads only safetensors files, "
            "never pickles: convert it with a trusted tool first"
        )
    try:
        handle = safe_open(str(path), framework="pt")
    except (SafetensorError, OSError, ValueError) as e:
        raise ValueError(
            f"{path} is not a readable safetensors file ({e}); it is truncated or corrupted, use an earlier checkpoint"
        ) from None
    with handle as f:
        yield f


def manifest_difference(path: str | Path, manifest: dict, ignore: tuple[str, ...] = ()) -> list[str]:
    """The keys of `manifest` (the job asked for now) whose values differ in the JSON manifest at
    `path` (the job that wrote parts into that folder); [] when there is none yet or they agree.
    Keys the folder's job added as it went (say, 'complete') are not compared. A folder of parts
    belongs to one job: callers refuse to mix in parts of another."""
    path = Path(path)
    if not path.exists():
        return []
    old, new = json.loads(path.read_text()), json.loads(json.dumps(manifest))
    return sorted(k for k in new if k not in ignore and old.get(k) != new[k])
