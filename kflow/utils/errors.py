"""One error base for everything kflow refuses. The CLI turns a KFlowError into one line and a
non-zero exit; anything else is a bug and keeps its traceback (behind --debug)."""

from __future__ import annotations


class KFlowError(Exception):
    """Bad input or state the user can fix; the message names the problem and the fix."""


class ConfigError(KFlowError, ValueError):
    """A config key, override or file that does not validate."""


class DataError(KFlowError, ValueError):
    """A dataset, image file or array that cannot be used as given."""


class CheckpointError(KFlowError, ValueError):
    """A checkpoint that is missing, corrupted or does not fit the run."""


class TrainingError(KFlowError, RuntimeError):
    """A training run that cannot start or continue (non-finite loss, unwritable folder, ...)."""


class BandCountError(ValueError):
    """A number of bands a transform cannot make of its shape; `limit` is the most it can."""

    def __init__(self, message: str, limit: int):
        super().__init__(message)
        self.limit = limit
