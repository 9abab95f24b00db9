"""The studio's request rules, case by case as a careless or hostile client sends them: every bad
request is a 4xx with one line naming the field or the problem, never a 500, and the server stays up."""

import json
import socket

import pytest
from test_server import call, job, raw_request  # noqa: E402  (this folder is on sys.path under pytest)


def headers(server, length):
    host, port = server.server_address[:2]
    return {"Host": f"{host}:{port}", "X-Kflow-Token": server.token, "Content-Length": length}


def read_all(s) -> str:
    out = b""
    while chunk := s.recv(65536):
        out += chunk
    s.close()
    return out.decode()


def one_line(out):
    err = json.loads(out)["error"]
    assert "\n" not in err and "unexpected" not in err
    return err


def test_a_body_shorter_than_its_length_is_refused_not_run(server):
    host, port = server.server_address[:2]
    before = int(job(server, "generate", {"n": 1})["id"][1:])
    s = socket.create_connection((host, port), timeout=30)
    s.sendall(
        f"POST /api/generate HTTP/1.1\r\nHost: {host}:{port}\r\nX-Kflow-Token: {server.token}\r\n"
        "Content-Length: 100\r\n\r\n".encode()
        + b'{"n": 1}'
    )
    s.shutdown(socket.SHUT_WR)  # the client is done: 8 of 100 bytes
    reply = read_all(s)
    assert reply.startswith("HTTP/1.0 400") or reply.startswith("HTTP/1.1 400"), reply[:80]
    assert "the body ended after 8 of its 100 bytes" in reply
    after = job(server, "generate", {"n": 1})["id"]  # the next job's id: no job was made in between
    assert int(after[1:]) == before + 1


@pytest.mark.parametrize("length, msg", [("-5", "is not a byte count"), ("ten", "is not a byte count")])
def test_bad_content_lengths(server, length, msg):
    code, out, _ = raw_request(server, "POST", "/api/generate", headers(server, length), b'{"n": 1}')
    assert code == 400 and msg in one_line(out)


def test_a_stalled_client_gets_a_timeout_not_a_500(server, monkeypatch):
    from kflow.studio import server as srv

    monkeypatch.setattr(srv.Handler, "timeout", 0.5)
    host, port = server.server_address[:2]
    s = socket.create_connection((host, port), timeout=30)
    s.sendall(
        f"POST /api/generate HTTP/1.1\r\nHost: {host}:{port}\r\nX-Kflow-Token: {server.token}\r\n"
        "Content-Length: 50\r\n\r\n{".encode()
    )  # and then nothing
    reply = read_all(s)
    assert " 408 " in reply.splitlines()[0] and "did not arrive within" in reply


@pytest.mark.parametrize(
    "path, body, msg",
    [
        ("/api/generate", "[" * 100000, "nested too deeply"),
        ("/api/edit", json.dumps({"image": "abc"}), "image must be an object"),
        ("/api/generate", json.dumps({"keep_bands": [0], "keep_from": {"id": "j1"}}), "keep_from must be the id"),
        ("/api/restore", json.dumps({"image": [1, 2], "task": "denoise"}), "image must be an object"),
    ],
)
def test_malformed_fields_name_the_field(server, path, body, msg):
    code, out, _ = call(server, path, raw=body.encode())
    assert code == 400 and msg in one_line(out)


def test_keep_from_an_edit_job_says_what_it_is(server):
    e = job(server, "edit", {"image": {"test_index": 0}, "keep_bands": [0]})
    assert e["state"] == "done", e
    g = job(server, "generate", {"n": 1, "keep_bands": [0], "keep_from": e["id"]})
    assert g["state"] == "error" and f"job {e['id']} is not a generated batch (it is a edit job)" in g["error"]


@pytest.mark.parametrize(
    "path", ["/api/jobs/{job}/%C2%B2.png", "/api/test/-1.png", "/api/test/x.png", "/api/test/1e3.png"]
)
def test_odd_file_names_are_404(server, path):
    done = job(server, "generate", {"n": 1})
    assert done["state"] == "done"
    code, out, _ = call(server, path.format(job=done["id"]))
    assert code == 404 and one_line(out)
