"""A job's progress: model evaluations done out of those it needs, and its cancel flag."""

from __future__ import annotations

from dataclasses import dataclass


class Cancelled(Exception):
    """The user cancelled the job; raised at its next model call."""


@dataclass
class Progress:
    """Model evaluations done out of those the job needs (the page's progress bar). Setting
    `cancelled` stops the job at its next model call (the counter advances on every call)."""

    total: int = 1
    _done: int = 0
    cancelled: bool = False

    @property
    def done(self) -> int:
        return self._done

    @done.setter
    def done(self, value: int) -> None:
        if self.cancelled:
            raise Cancelled
        self._done = value

    @property
    def fraction(self) -> float:
        return min(self.done / max(self.total, 1), 1.0)
