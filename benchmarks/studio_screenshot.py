"""Screenshot of the band studio for the README and docs: serve a run on a free local port, open
the page in headless Chromium, generate a batch, keep band 0 and regenerate, and save the page.

    python benchmarks/studio_screenshot.py outputs/demo/run --out docs/images/studio.png
    python benchmarks/studio_screenshot.py runs/quality/cpu-1500-wavelet2_o50_win   # what docs/ shows

Needs Debian's chromium and chromium-driver and the selenium package (`make test` installs them).
"""

from __future__ import annotations

import argparse
import shutil
import threading
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait

from kflow.studio.engine import Studio
from kflow.studio.server import StudioServer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("run", nargs="?", default="outputs/demo/run")
    ap.add_argument("--out", default="docs/images/studio.png")
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--keep", default="0", help="bands kept for the regeneration shown")
    args = ap.parse_args()

    srv = StudioServer(Studio(args.run), port=0, log=lambda *a: None)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    opts = Options()
    opts.binary_location = shutil.which("chromium") or shutil.which("google-chrome")
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,980"):
        opts.add_argument(a)
    d = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)
    try:
        d.get(srv.open_url)
        wait = WebDriverWait(d, 300, poll_frequency=0.1)
        wait.until(lambda d: "step" in d.find_element("id", "facts-line").text)
        d.find_element("id", "gen-n").clear()
        d.find_element("id", "gen-n").send_keys(str(args.n))

        def shown(previous):
            job = lambda d: d.find_element("id", "download-npz").get_attribute("data-job") or ""
            return lambda d: job(d) not in ("", previous)

        d.find_element("id", "generate").click()
        wait.until(shown(""))
        first = d.find_element("id", "download-npz").get_attribute("data-job")
        for b in args.keep.split(","):
            d.find_element("id", f"keep-band-{int(b)}").click()
        d.find_element("id", "regenerate").click()
        wait.until(shown(first))
        images = lambda d: d.find_elements("css selector", "figure img")
        wait.until(lambda d: all(i.get_attribute("naturalWidth") != "0" for i in images(d)))
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        d.save_screenshot(args.out)
        print(f"{args.out}: {d.find_element('id', 'message').text}")
    finally:
        d.quit()
        srv.shutdown()


if __name__ == "__main__":
    main()
