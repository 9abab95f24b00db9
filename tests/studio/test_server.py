"""The studio's HTTP API as the page uses it: jobs, files, refusals, and a server that stays up."""

import base64
import http.client
import io
import json
import time
import urllib.error
import urllib.request

import numpy as np
import pytest


def call(server, path, body=None, raw=None):
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request(
        server.url.rstrip("/") + path,
        data=data,
        method="POST" if data is not None else "GET",
        headers={"X-Kflow-Token": server.token},  # what the page's cookie carries
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read(), r.headers.get("Content-Type")
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers.get("Content-Type")


def job(server, kind, body):
    code, out, _ = call(server, f"/api/{kind}", body)
    assert code == 202, out
    jid = json.loads(out)["job"]
    for _ in range(600):
        j = json.loads(call(server, f"/api/jobs/{jid}")[1])
        if j["state"] in ("done", "error"):
            return j
        time.sleep(0.05)
    raise AssertionError("job did not finish")


def test_page_and_facts(server):
    code, page, ctype = call(server, "/")
    assert code == 200 and ctype.startswith("text/html") and b'id="generate"' in page
    facts = json.loads(call(server, "/api/facts")[1])
    assert facts["num_bands"] == 3 and len(facts["windows"]) == 3


def test_generate_then_keep_band_0(server):
    a = job(server, "generate", {"n": 4, "seed": 0, "label": -1})
    assert a["state"] == "done" and a["progress"] == 1.0 and len(a["panels"]) == 2
    b = job(server, "generate", {"n": 4, "seed": 1, "label": -1, "keep_bands": [0], "keep_from": a["id"]})
    za, zb = (np.load(io.BytesIO(call(server, j["npz"])[1]), allow_pickle=False) for j in (a, b))
    band = za["band_of_coefficient"]
    assert np.array_equal(za["noise_coefficients"][:, band == 0], zb["noise_coefficients"][:, band == 0])
    assert (za["noise_coefficients"][:, band != 0] != zb["noise_coefficients"][:, band != 0]).all()
    code, img, ctype = call(server, a["panels"][1]["url"])
    assert code == 200 and ctype == "image/png" and img[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    "path, raw, code, msg",
    [
        ("/api/generate", b"{not json", 400, "not JSON"),
        ("/api/generate", b"[1, 2]", 400, "JSON object"),
        ("/api/generate", json.dumps({"n": -3}).encode(), 400, "n=-3"),
        ("/api/edit", json.dumps({"keep_bands": [0]}).encode(), 400, "upload an image"),
        ("/api/restore", json.dumps({"image": {"test_index": 0}, "task": "denoise"}).encode(), 400, "task="),
        ("/api/train", b"{}", 404, "no such action"),
    ],
)
def test_refusals_are_one_line_json(server, path, raw, code, msg):
    got, out, ctype = call(server, path, raw=raw)
    assert got == code and ctype == "application/json"
    err = json.loads(out)["error"]
    assert msg in err and "\n" not in err


def test_failed_jobs_and_unknown_things_leave_the_server_up(server):
    bad = job(server, "edit", {"image": {"upload": base64.b64encode(b"%PDF-1.4 not an image").decode()}})
    assert bad["state"] == "error" and "not an image" in bad["error"]
    few = job(server, "generate", {"n": 2, "steps": 2})  # fewer steps than bands
    assert few["state"] == "error" and "at least one step per band" in few["error"]
    assert call(server, "/api/jobs/j99999")[0] == 404
    assert call(server, f"/api/jobs/{bad['id']}/result.npz")[0] == 409
    assert call(server, "/api/test/99999.png")[0] == 404
    assert call(server, "/nowhere")[0] == 404
    # a body announced far too large is refused before it is read
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=10)
    conn.putrequest("POST", "/api/edit")
    conn.putheader("X-Kflow-Token", server.token)
    conn.putheader("Content-Length", str(10**9))
    conn.endheaders()
    r = conn.getresponse()
    assert r.status == 413 and "MiB" in json.loads(r.read())["error"]
    conn.close()
    assert job(server, "generate", {"n": 1})["state"] == "done"


def raw_request(server, method, path, headers=None, body=b""):
    host, port = server.server_address[:2]
    c = http.client.HTTPConnection(host, port, timeout=30)
    c.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    for k, v in (headers or {}).items():
        c.putheader(k, v)
    c.endheaders()
    if body:
        c.send(body)
    r = c.getresponse()
    out = r.status, r.read(), dict(r.getheaders())
    c.close()
    return out


@pytest.mark.parametrize(
    "why, headers, path",
    [
        ("no token", {}, "/api/facts"),
        ("a wrong token", {"X-Kflow-Token": "guess"}, "/api/facts"),
        ("a foreign Host (DNS rebinding)", {"Host": "evil.example:80", "X-Kflow-Token": None}, "/api/facts"),
        ("a cross-site form post", {"Origin": "http://evil.example", "X-Kflow-Token": None}, "/api/generate"),
    ],
)
def test_requests_from_elsewhere_are_refused(server, why, headers, path):
    host, port = server.server_address[:2]
    h = {"Host": f"{host}:{port}", "Content-Type": "application/json"}
    h.update({k: (server.token if v is None else v) for k, v in headers.items()})
    body = b'{"n": 1}' if path == "/api/generate" else b""
    if body:
        h["Content-Length"] = str(len(body))
    before = len(server.worker.jobs)
    code, out, got = raw_request(server, "POST" if body else "GET", path, h, body)
    assert code == 403, why
    assert "\n" not in json.loads(out)["error"]
    assert len(server.worker.jobs) == before  # nothing started
    assert got["X-Frame-Options"] == "DENY" and got["X-Content-Type-Options"] == "nosniff"


def test_the_printed_address_sets_the_token_cookie(server):
    host, port = server.server_address[:2]
    code, _, headers = raw_request(server, "GET", f"/?token={server.token}", {"Host": f"{host}:{port}"})
    assert code == 200 and "SameSite=Strict" in headers["Set-Cookie"] and "HttpOnly" in headers["Set-Cookie"]
    cookie = headers["Set-Cookie"].split(";")[0]
    code, out, _ = raw_request(server, "GET", "/api/facts", {"Host": f"localhost:{port}", "Cookie": cookie})
    assert code == 200 and json.loads(out)["num_bands"] == 3


def test_chunked_bodies_are_refused_not_ignored(server):
    host, port = server.server_address[:2]
    h = {"Host": f"{host}:{port}", "X-Kflow-Token": server.token, "Transfer-Encoding": "chunked"}
    code, out, _ = raw_request(server, "POST", "/api/generate", h, b'8\r\n{"n": 1}\r\n0\r\n\r\n')
    assert code == 411 and "Content-Length" in json.loads(out)["error"]


def test_the_queue_is_bounded_and_jobs_can_be_cancelled(server):
    from kflow.studio.jobs import MAX_WAITING

    worker = server.worker
    started = []
    for _ in range(MAX_WAITING + 4):
        code, out, _ = call(server, "/api/generate", {"n": 64, "steps": 400, "solver": "rk4"})
        if code != 202:
            break
        started.append(json.loads(out)["job"])
    assert code == 429 and "waiting already" in json.loads(out)["error"]
    for jid in started:  # cancel them all: queued ones never run, the running one stops at its next call
        code, out, _ = call(server, f"/api/jobs/{jid}/cancel", {})
        assert code == 200
    for _ in range(600):
        states = {worker.get(j).state for j in started}
        if states == {"cancelled"}:
            break
        time.sleep(0.05)
    assert states == {"cancelled"}
    assert job(server, "generate", {"n": 2, "steps": 6})["state"] == "done"  # the studio serves on
