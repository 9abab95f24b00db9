"""`kflow studio` from a shell: it serves and prints its address; missing runs and busy ports are one line."""

import json
import os
import re
import socket
import subprocess
import sys
import urllib.request

from kflow.cli.main import main


def test_serves_and_prints_its_address(run):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    p = subprocess.Popen(
        [sys.executable, "-m", "kflow.cli.main", "studio", str(run), "--port", "0", "--device", "cpu"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        url = token = None
        for _ in range(10):
            line = p.stdout.readline()
            m = re.search(r"open (http://127\.0\.0\.1:\d+/)\?token=(\S+)", line)
            if m:
                url, token = m.groups()
                break
        assert url, "no address printed"
        req = urllib.request.Request(url + "api/facts", headers={"X-Kflow-Token": token})
        with urllib.request.urlopen(req, timeout=30) as r:
            assert json.loads(r.read())["num_bands"] == 3
    finally:
        p.terminate()
        p.wait(timeout=30)


def test_no_run_and_no_demo_run_says_how_to_get_one(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["studio"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "make demo" in err


def test_missing_run_and_busy_port_are_one_line(run, tmp_path, capsys):
    assert main(["studio", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert main(["studio", str(run), "--port", str(port), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"cannot listen on 127.0.0.1:{port}" in err and "--port" in err
