"""The studio's jobs: one worker thread runs them one at a time while the page polls their progress;
the last KEEP_JOBS finished ones are kept for their files, and a job can be cancelled."""

from __future__ import annotations

import itertools
import queue
import threading
import traceback
from collections import OrderedDict
from dataclasses import dataclass, field

from ..utils.errors import KFlowError
from .engine import Studio
from .progress import Cancelled, Progress
from .requests import RequestError
from .results import Result

KEEP_JOBS = 32  # finished jobs kept for their files (queued and running ones are never dropped)
MAX_WAITING = 8  # queued jobs; more are refused until some have run or been cancelled


@dataclass
class Job:
    id: str
    kind: str
    state: str = "queued"  # queued | running | done | error | cancelled
    progress: Progress = field(default_factory=Progress)
    result: Result | None = None
    error: str | None = None

    def summary(self) -> dict:
        d = {"id": self.id, "kind": self.kind, "state": self.state, "progress": round(self.progress.fraction, 4)}
        if self.error:
            d["error"] = self.error
        if self.result is not None:
            base = f"/api/jobs/{self.id}"
            d["message"] = self.result.message
            d["panels"] = [{"title": p.title, "url": f"{base}/{i}.png"} for i, p in enumerate(self.result.panels)]
            d["npz"] = f"{base}/result.npz"
        return d


def one_line(e: BaseException) -> str:
    if isinstance(e, (KFlowError, ValueError)):
        return str(e)
    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"unexpected {type(e).__name__}: {first}"


class Worker:
    """Runs jobs one at a time on a daemon thread; keeps the last KEEP_JOBS finished jobs for their files."""

    def __init__(self, studio: Studio, log=print):
        self.studio, self.log = studio, log
        self.jobs: OrderedDict[str, Job] = OrderedDict()
        self.lock = threading.Lock()
        self.queue: queue.Queue = queue.Queue()
        self.ids = itertools.count(1)
        threading.Thread(target=self._loop, daemon=True, name="kflow-studio-worker").start()

    def submit(self, kind: str, request) -> Job:
        with self.lock:
            waiting = sum(j.state == "queued" for j in self.jobs.values())
            if waiting >= MAX_WAITING:
                raise RequestError(f"{waiting} jobs are waiting already; wait for them or cancel one")
            job = Job(id=f"j{next(self.ids)}", kind=kind)
            self.jobs[job.id] = job
            finished = [i for i, j in self.jobs.items() if j.state in ("done", "error", "cancelled")]
            for i in finished[: max(0, len(finished) - KEEP_JOBS)]:
                del self.jobs[i]
        self.queue.put((job, request))
        return job

    def cancel(self, job_id: str) -> Job | None:
        with self.lock:
            job = self.jobs.get(job_id)
            if job is not None and job.state in ("queued", "running"):
                job.progress.cancelled = True  # a running job stops at its next model call
                if job.state == "queued":
                    job.state = "cancelled"
            return job

    def get(self, job_id: str) -> Job | None:
        with self.lock:
            return self.jobs.get(job_id)

    def _result_of(self, job_id: str) -> Result | None:
        job = self.get(job_id)
        return job.result if job else None

    def _loop(self) -> None:
        while True:
            job, req = self.queue.get()
            if job.progress.cancelled:
                continue
            job.state = "running"
            try:
                job.result = self.studio.perform(req, job.progress, self._result_of)
                job.state = "done"
                self.log(f"{job.id} {job.kind}: {job.result.message}")
            except Cancelled:
                job.state = "cancelled"
                self.log(f"{job.id} {job.kind} cancelled")
            except Exception as e:  # noqa: BLE001 - a failed job is reported on the page, the server lives on
                job.error, job.state = one_line(e), "error"
                self.log(f"{job.id} {job.kind} failed: {job.error}")
                if not isinstance(e, (KFlowError, ValueError)):
                    traceback.print_exc()
