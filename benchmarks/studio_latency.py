"""Band studio latency: one "keep band 0, regenerate" of 8 images at 20 Euler steps, timed as the page
sees it (POST, the job's polls until done, then the samples PNG, the strip PNG and the .npz fetched
over HTTP), against a real server on a local port. The weights do not change the compute, so each
model is a run trained for one step from the config named.

    python benchmarks/studio_latency.py --out docs/results/studio_latency_cpu
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import threading
import time
import urllib.request
from pathlib import Path

import torch
from toolkit import report  # markdown + JSON as every benchmark writes them

from kflow.cli.main import main as kflow
from kflow.metrics.evaluate import format_table

ROOT = Path(__file__).resolve().parents[1]
MODELS = {  # name -> config + overrides (the demo's UNet is what `make studio` serves)
    "demo UNet (32 ch, 3 wavelet bands, class-conditional)": ("demo.yaml", []),
    "cpu-profile UNet (16 ch, 2 wavelet bands, overlap 0.5)": (
        "fmnist_wavelet2.yaml",
        [
            "model.unet.channels=16",
            "model.unet.channel_mult=[1,2,2]",
            "model.unet.num_res_blocks=1",
            "path.overlap=0.5",
            "model.k_embedding=window",
        ],
    ),
}


TOKEN = "latency-benchmark"  # the server below is started with it


def http(url: str, body: dict | None = None) -> bytes:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"X-Kflow-Token": TOKEN})
    with urllib.request.urlopen(req, timeout=120) as r:
        return r.read()


def round_trip(base: str, body: dict) -> tuple[float, str]:
    """Seconds from the POST to the last file the page loads; the job id."""
    t0 = time.perf_counter()
    jid = json.loads(http(base + "api/generate", body))["job"]
    while True:
        j = json.loads(http(f"{base}api/jobs/{jid}"))
        if j["state"] == "error":
            raise RuntimeError(j["error"])
        if j["state"] == "done":
            break
        time.sleep(0.15)  # the page polls every 150 ms
    for p in j["panels"]:
        http(base + p["url"].lstrip("/"))
    http(base + j["npz"].lstrip("/"))
    return time.perf_counter() - t0, jid


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--work", default="runs/studio_latency")
    ap.add_argument("--out", default=None, help="write markdown + JSON here")
    args = ap.parse_args()
    os.environ.setdefault("KFLOW_PROGRESS", "0")
    from kflow.studio.engine import Studio
    from kflow.studio.server import StudioServer

    rows = []
    for name, (cfg, over) in MODELS.items():
        out = Path(args.work) / cfg.removesuffix(".yaml")
        if not (out / "checkpoints").is_dir():
            common = ["train.steps=1", "train.ckpt_every=1", "train.sample_every=0"]
            assert kflow(["train", str(ROOT / "configs" / cfg), f"out_dir={out}", *common, *over]) == 0
        studio = Studio(out)
        srv = StudioServer(studio, port=0, log=lambda *a: None, token=TOKEN)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        label = -1 if studio.run.num_classes else None
        body = {"n": 8, "steps": 20, "solver": "euler", "seed": 0, "label": label}
        _, first = round_trip(srv.url, body)  # the batch to keep band 0 from (and the warm-up)
        times = []
        for i in range(args.repeats):
            t, _ = round_trip(srv.url, dict(body, seed=i + 1, keep_bands=[0], keep_from=first))
            times.append(t)
        srv.shutdown()
        srv.server_close()
        rows.append(
            dict(
                model=name,
                parameters=sum(p.numel() for p in studio.run.model.parameters()),
                median_s=statistics.median(times),
                min_s=min(times),
                max_s=max(times),
                repeats=args.repeats,
            )
        )
        print(json.dumps(rows[-1]), flush=True)
    threads = torch.get_num_threads()
    hw = f"{platform.machine()} CPU, {os.cpu_count()} cores, torch {torch.__version__}, {threads} threads"
    head = f"hardware: {hw}; one keep-band-0 regenerate of 8 images, Euler 20 steps, POST to the last file fetched"
    report(head, format_table(rows, ["model", "parameters", "median_s", "min_s", "max_s"]), rows, args.out)


if __name__ == "__main__":
    main()
