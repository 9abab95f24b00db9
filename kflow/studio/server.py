"""The studio's web server: the standard library's threading HTTP server and one page.

Requests are validated on the request thread (a bad upload is answered at once with its one-line
message); the work runs on one worker thread, one job at a time, while the page polls the job's
progress. Nothing a request does can stop the server: every handler ends in a JSON answer.

Safe on localhost against other web pages (as Jupyter's server is): the printed address carries a
random token, which the page keeps as a SameSite=Strict cookie; every /api request needs it (cookie,
X-Kflow-Token header or ?token=). The Host header must name this server (no DNS rebinding) and a
POST's Origin, when sent, must be this server's (no cross-site form posts). The queue is bounded
and jobs can be cancelled; bodies need a Content-Length; slow clients time out.

    GET  /                         the page
    GET  /api/facts                the run (transform, bands, windows, steps, FD)
    GET  /api/test/<i>.png         an image of the run's test split
    POST /api/generate|edit|restore   JSON request -> {"job": id}   (400 + {"error"} when refused)
    GET  /api/jobs/<id>            state, progress, message, error, the panels' and downloads' URLs
    POST /api/jobs/<id>/cancel     stop a queued or running job
    GET  /api/jobs/<id>/<i>.png    panel i;  /api/jobs/<id>/result.npz  the arrays
"""

from __future__ import annotations

import hmac
import json
import re
import secrets
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from ..utils.errors import KFlowError
from .engine import Studio
from .jobs import KEEP_JOBS, Worker, one_line
from .requests import REQUESTS, ImageSource, RequestError
from .results import Panel, Result

PAGE = Path(__file__).with_name("page.html")
MAX_BODY = 16 * 2**20  # uploads arrive base64-encoded in JSON
COOKIE = "kflow_studio_token"
HEADERS = {  # no framing, no sniffing, nothing loaded from elsewhere, no referrer with the token
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
}


class Handler(BaseHTTPRequestHandler):
    server: StudioServer
    timeout = 30  # seconds a client may take to send its request (no slow-loris hold on a thread)

    def log_message(self, format, *args):  # quiet: the worker logs the jobs
        pass

    def _send(self, code: int, body: bytes, ctype: str, filename: str | None = None, cookie: str | None = None):
        try:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            for name, value in HEADERS.items():
                self.send_header(name, value)
            if cookie:
                self.send_header("Set-Cookie", f"{COOKIE}={cookie}; Path=/; HttpOnly; SameSite=Strict")
            if filename:
                self.send_header("Content-Disposition", f'attachment; filename="{filename}"')
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client left early: nothing to tell it
            self.close_connection = True

    def _token(self) -> str | None:
        """The token this request carries: header, cookie, or ?token=."""
        if self.headers.get("X-Kflow-Token"):
            return self.headers["X-Kflow-Token"]
        jar = SimpleCookie(self.headers.get("Cookie") or "")
        if COOKIE in jar:
            return jar[COOKIE].value
        query = self.path.split("?", 1)[1] if "?" in self.path else ""
        for pair in query.split("&"):
            if pair.startswith("token="):
                return pair[len("token=") :]
        return None

    def _refused(self, post: bool) -> str | None:
        """Why this request may not proceed (Host, Origin, token), or None."""
        srv = self.server
        if not srv.host_ok(self.headers.get("Host", "")):
            return f"Host {self.headers.get('Host')!r} is not this studio; open the address `kflow studio` printed"
        origin = self.headers.get("Origin")
        if post and origin is not None and origin not in srv.origins(self.headers.get("Host", "")):
            return f"requests from {origin} are refused; use the studio's own page"
        return None

    def _authorised(self) -> bool:
        token = self._token()
        return token is not None and hmac.compare_digest(token, self.server.token)

    def _json(self, code: int, obj) -> None:
        self._send(code, json.dumps(obj).encode(), "application/json")

    def do_GET(self):  # noqa: N802 - http.server's name
        self._handle(self._get, post=False)

    def do_POST(self):  # noqa: N802
        self._handle(self._post, post=True)

    def _handle(self, route, post: bool) -> None:
        p = self.path.split("?", 1)[0].rstrip("/") or "/"
        try:
            why = self._refused(post)
            if why:
                return self._json(403, {"error": why})
            if p != "/" and not self._authorised():
                return self._json(
                    403, {"error": "no valid access token; open the address `kflow studio` printed (it carries one)"}
                )
            route(p)
        except Exception as e:  # noqa: BLE001
            self._json(500, {"error": one_line(e)})

    def _get(self, p: str) -> None:
        studio, worker = self.server.studio, self.server.worker
        parts = p.strip("/").split("/")
        if p == "/":  # the page; a valid ?token= becomes the page's cookie for its /api requests
            cookie = self.server.token if self._authorised() else None
            return self._send(200, PAGE.read_bytes(), "text/html; charset=utf-8", cookie=cookie)
        if p == "/api/facts":
            return self._json(200, self.server.facts)
        if len(parts) == 3 and parts[:2] == ["api", "test"] and parts[2].endswith(".png"):
            try:
                if not DIGITS.fullmatch(parts[2][:-4]):
                    raise RequestError(f"test image {parts[2][:-4]!r} does not exist (indices are 0, 1, ...)")
                x = studio.image(ImageSource(test_index=int(parts[2][:-4])), what="test image")
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
            if name.endswith(".png") and DIGITS.fullmatch(name[:-4]) and int(name[:-4]) < len(job.result.panels):
                return self._send(200, job.result.png(int(name[:-4])), "image/png")
        self._json(404, {"error": f"no such page: {p}"})

    def _post(self, p: str) -> None:
        parts = p.strip("/").split("/")
        if len(parts) == 4 and parts[:2] == ["api", "jobs"] and parts[3] == "cancel":
            job = self.server.worker.cancel(parts[2])
            if job is None:
                return self._json(404, {"error": f"job {parts[2]} is unknown or gone"})
            return self._json(200, job.summary())
        kind = p.removeprefix("/api/")
        if not p.startswith("/api/") or kind not in REQUESTS:
            return self._json(404, {"error": f"no such action: {p}"})
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._json(411, {"error": "send the request with a Content-Length (chunked bodies are not read)"})
        length = self.headers.get("Content-Length") or "0"
        if not DIGITS.fullmatch(length.strip()):
            return self._json(400, {"error": f"Content-Length {length[:20]!r} is not a byte count"})
        length = int(length)
        if length > MAX_BODY:
            return self._json(413, {"error": f"the upload is {length / 2**20:.1f} MiB; images up to 12 MiB are taken"})
        try:
            raw = self.rfile.read(length)
        except TimeoutError:
            return self._json(408, {"error": f"the request body did not arrive within {self.timeout} s; send it again"})
        if len(raw) < length:
            return self._json(400, {"error": f"the body ended after {len(raw)} of its {length} bytes; send it again"})
        try:
            body = json.loads(raw or b"{}")
            if not isinstance(body, dict):
                raise RequestError("the request must be a JSON object")
        except RecursionError:
            return self._json(400, {"error": "the request is nested too deeply to be a studio request"})
        except ValueError as e:
            return self._json(400, {"error": one_line(e) if isinstance(e, RequestError) else "the request is not JSON"})
        try:
            req = REQUESTS[kind].parse(body, self.server.studio.path.num_bands)
        except RequestError as e:
            return self._json(400, {"error": str(e)})
        try:
            job = self.server.worker.submit(kind, req)
        except RequestError as e:
            return self._json(429, {"error": str(e)})
        self._json(202, {"job": job.id})


DIGITS = re.compile(r"[0-9]+")  # an index or byte count: ASCII digits only


class StudioServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the listen backlog (the default 5 reset connections under load)

    def __init__(self, studio: Studio, host: str = "127.0.0.1", port: int = 8765, log=print, token: str | None = None):
        super().__init__((host, port), Handler)
        self.studio, self.facts = studio, studio.facts()
        self.worker = Worker(studio, log)
        self.token = token or secrets.token_urlsafe(24)
        self.bind_host = host

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"

    @property
    def open_url(self) -> str:
        """The address to open: the page with the access token."""
        return f"{self.url}?token={self.token}"

    def host_ok(self, host_header: str) -> bool:
        """Host names this server: a loopback name with its port (a DNS-rebinding page sends its own
        name). Bound to every interface (--host 0.0.0.0), any name reaching it is the user's choice."""
        port = self.server_address[1]
        if self.bind_host in ("0.0.0.0", "::"):
            return True
        names = {"127.0.0.1", "localhost", "[::1]", self.bind_host}
        return host_header in {f"{n}:{port}" for n in names}

    def origins(self, host_header: str) -> set[str]:
        return {f"http://{host_header}"}

    def handle_error(self, request, client_address):  # a client that left early is not an error
        import sys

        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError, TimeoutError)):
            return
        super().handle_error(request, client_address)


def serve(run_dir: str | Path, host: str = "127.0.0.1", port: int = 8765, device="cpu") -> None:
    """Load the run and serve until Ctrl-C."""
    studio = Studio(run_dir, device=device)
    try:
        server = StudioServer(studio, host, port)
    except OSError as e:
        raise KFlowError(f"cannot listen on {host}:{port} ({e.strerror}); pass --port N (0 picks a free one)") from None
    f = server.facts
    print(f"kflow studio: {f['kind']} ({f['transform']}), step {f['step']}, run {run_dir}")
    print(f"kflow studio: open {server.open_url}  (Ctrl-C stops it)", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
