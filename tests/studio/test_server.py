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
    req = urllib.request.Request(server.url.rstrip("/") + path, data=data, method="POST" if data is not None else "GET")
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
    conn.putheader("Content-Length", str(10**9))
    conn.endheaders()
    r = conn.getresponse()
    assert r.status == 413 and "MiB" in json.loads(r.read())["error"]
    conn.close()
    assert job(server, "generate", {"n": 1})["state"] == "done"
