"""The studio's web server: the standard library's threading HTTP server and one page.

Requests are validated on the request thread (a bad upload is answered at once with its one-line
message); the work runs on one worker thread, one job at a time, while the page polls the job's
progress. Nothing a request does can stop the server: every handler ends in a JSON answer.

    GET  /                         the page
    GET  /api/facts                the run (transform, bands, windows, steps, FD)
    GET  /api/test/<i>.png         an image of the run's test split
    POST /api/generate|edit|restore   JSON request -> {"job": id}   (400 + {"error"} when refused)
    GET  /api/jobs/<id>            state, progress, message, error, the panels' and downloads' URLs
    GET  /api/jobs/<id>/<i>.png    panel i;  /api/jobs/<id>/result.npz  the arrays
"""

from __future__ import annotations

import itertools
import json
import queue
import threading
import traceback
from collections import OrderedDict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from ..utils.errors import KFlowError
from .engine import Progress, Studio
from .requests import REQUESTS, ImageSource, RequestError
from .results import Panel, Result

PAGE = Path(__file__).with_name("page.html")
MAX_BODY = 16 * 2**20  # uploads arrive base64-encoded in JSON
KEEP_JOBS = 32


@dataclass
class Job:
    id: str
    kind: str
    state: str = "queued"  # queued | running | done | error
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
    """Runs jobs one at a time on a daemon thread; keeps the last KEEP_JOBS jobs for their files."""

    def __init__(self, studio: Studio, log=print):
        self.studio, self.log = studio, log
        self.jobs: OrderedDict[str, Job] = OrderedDict()
        self.lock = threading.Lock()
        self.queue: queue.Queue = queue.Queue()
        self.ids = itertools.count(1)
        threading.Thread(target=self._loop, daemon=True, name="kflow-studio-worker").start()

    def submit(self, kind: str, request) -> Job:
        with self.lock:
            job = Job(id=f"j{next(self.ids)}", kind=kind)
            self.jobs[job.id] = job
            while len(self.jobs) > KEEP_JOBS:
                self.jobs.popitem(last=False)
        self.queue.put((job, request))
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
            job.state = "running"
            try:
                job.result = self.studio.perform(req, job.progress, self._result_of)
                job.state = "done"
                self.log(f"{job.id} {job.kind}: {job.result.message}")
            except Exception as e:  # noqa: BLE001 - a failed job is reported on the page, the server lives on
                job.error, job.state = one_line(e), "error"
                self.log(f"{job.id} {job.kind} failed: {job.error}")
                if not isinstance(e, (KFlowError, ValueError)):
                    traceback.print_exc()


class Handler(BaseHTTPRequestHandler):
    server: StudioServer

    def log_message(self, format, *args):  # quiet: the worker logs the jobs
        pass

    def _send(self, code: int, body: bytes, ctype: str, filename: str | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        if filename:
            self.send_header("Content-Disposition", f'attachment; filename="{filename}"')
        self.end_headers()
        self.wfile.write(body)

    def _json(self, code: int, obj) -> None:
        self._send(code, json.dumps(obj).encode(), "application/json")

    def do_GET(self):  # noqa: N802 - http.server's name
        try:
            self._get(self.path.split("?", 1)[0].rstrip("/") or "/")
        except Exception as e:  # noqa: BLE001
            self._json(500, {"error": one_line(e)})

    def do_POST(self):  # noqa: N802
        try:
            self._post(self.path.split("?", 1)[0].rstrip("/"))
        except Exception as e:  # noqa: BLE001
            self._json(500, {"error": one_line(e)})

    def _get(self, p: str) -> None:
        studio, worker = self.server.studio, self.server.worker
        parts = p.strip("/").split("/")
        if p == "/":
            return self._send(200, PAGE.read_bytes(), "text/html; charset=utf-8")
        if p == "/api/facts":
            return self._json(200, self.server.facts)
        if len(parts) == 3 and parts[:2] == ["api", "test"] and parts[2].endswith(".png"):
            try:
                i = int(parts[2][:-4])
                x = studio.image(ImageSource(test_index=i), what="test image")
            except (ValueError, RequestError) as e:
                return self._json(404, {"error": one_line(e)})
            return self._send(200, Result("test", [Panel("", x, 1)], "", {}).png(0, scale=4), "image/png")
        if len(parts) >= 3 and parts[:2] == ["api", "jobs"]:
            job = worker.get(parts[2])
            if job is None:
                return self._json(404, {"error": f"job {parts[2]} is unknown or gone (the last {KEEP_JOBS} are kept)"})
            if len(parts) == 3:
                return self._json(200, job.summary())
            if job.result is None:
                return self._json(409, {"error": f"job {job.id} has no result ({job.state})"})
            name = parts[3]
            if name == "result.npz":
                return self._send(200, job.result.npz(), "application/octet-stream", f"kflow-{job.kind}-{job.id}.npz")
            if name.endswith(".png") and name[:-4].isdigit() and int(name[:-4]) < len(job.result.panels):
                return self._send(200, job.result.png(int(name[:-4])), "image/png")
        self._json(404, {"error": f"no such page: {p}"})

    def _post(self, p: str) -> None:
        kind = p.removeprefix("/api/")
        if not p.startswith("/api/") or kind not in REQUESTS:
            return self._json(404, {"error": f"no such action: {p}"})
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            return self._json(413, {"error": f"the upload is {length / 2**20:.1f} MiB; images up to 12 MiB are taken"})
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
            if not isinstance(body, dict):
                raise RequestError("the request must be a JSON object")
        except ValueError as e:
            return self._json(400, {"error": one_line(e) if isinstance(e, RequestError) else "the request is not JSON"})
        try:
            req = REQUESTS[kind].parse(body, self.server.studio.path.num_bands)
        except RequestError as e:
            return self._json(400, {"error": str(e)})
        job = self.server.worker.submit(kind, req)
        self._json(202, {"job": job.id})


class StudioServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, studio: Studio, host: str = "127.0.0.1", port: int = 8765, log=print):
        super().__init__((host, port), Handler)
        self.studio, self.facts = studio, studio.facts()
        self.worker = Worker(studio, log)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"


def serve(run_dir: str | Path, host: str = "127.0.0.1", port: int = 8765, device="cpu") -> None:
    """Load the run and serve until Ctrl-C."""
    studio = Studio(run_dir, device=device)
    try:
        server = StudioServer(studio, host, port)
    except OSError as e:
        raise KFlowError(f"cannot listen on {host}:{port} ({e.strerror}); pass --port N (0 picks a free one)") from None
    f = server.facts
    print(f"kflow studio: {f['kind']} ({f['transform']}), step {f['step']}, run {run_dir}")
    print(f"kflow studio: open {server.url}  (Ctrl-C stops it)", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
