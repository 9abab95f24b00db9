"""One command per folder: an advisory lock (flock) on the folder itself, held for the command's
lifetime. A second kflow command on the same run or output folder is refused in one line instead
of interleaving its files with the first one's. The kernel drops the lock when the holder exits,
however it exits (a SIGKILL included), and no lock file is left in the folder.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from .errors import KFlowError


class FolderBusy(KFlowError):
    """Another kflow command holds the folder."""


class FolderLock:
    def __init__(self, folder: str | Path, what: str = "folder"):
        self.folder, self.what, self._fd = Path(folder), what, None

    def acquire(self) -> FolderLock:
        """Checked before any work: the folder is a folder we can write (else one line), and free."""
        if self.folder.exists() and not self.folder.is_dir():
            raise KFlowError(f"{self.folder} is a file, not a folder; give a folder as the {self.what}")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.folder, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as e:
            raise KFlowError(f"cannot write to {self.folder} ({e.strerror or e}); choose another {self.what}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise FolderBusy(
                f"{self.folder} is in use by another kflow command; wait for it to finish or use another {self.what}"
            ) from None
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
