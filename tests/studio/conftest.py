import threading
from pathlib import Path

import pytest

from kflow.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "digits_tiny.yaml"


@pytest.fixture(scope="package")
def run(tiny_run):
    return tiny_run


@pytest.fixture(scope="package")
def fm_run(tmp_path_factory):
    """The same, as plain flow matching (one band) and unconditional."""
    out = tmp_path_factory.mktemp("studio") / "fm"
    args = ["transform.name=identity", "data.labels=false", "train.steps=3", "train.ckpt_every=3"]
    assert main(["train", str(TINY), f"out_dir={out}", *args]) == 0
    return out


@pytest.fixture(scope="package")
def server(run):
    """The studio serving `run` on a free local port, in this process."""
    from kflow.studio.engine import Studio
    from kflow.studio.server import StudioServer

    srv = StudioServer(Studio(run), port=0, log=lambda *a: None)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()
