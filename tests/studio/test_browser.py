"""The page in a real headless Chromium (Debian's chromium + chromium-driver, driven by selenium):
generate, keep band 0 and redraw the rest, check the offered .npz files; a non-image upload shows
its error on the page and the server keeps answering. Skipped, with the reason, where no browser
is installed (`make test` installs one when it can)."""

import io
import json
import shutil
import urllib.request

import numpy as np
import pytest

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER), reason="no chromium/chromedriver (Debian: apt-get install chromium chromium-driver)"
)


@pytest.fixture(scope="module")
def browser():
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1400,1000"):
        opts.add_argument(a)
    drv = webdriver.Chrome(service=Service(DRIVER), options=opts)
    drv.set_page_load_timeout(60)
    yield drv
    drv.quit()


def wait_for(drv, cond, timeout=120):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(drv, timeout, poll_frequency=0.1).until(cond)


def npz_offered(drv, server) -> tuple[str, dict]:
    """The job of the .npz the page links to, and its arrays (fetched as a user's download would be)."""
    link = drv.find_element("id", "download-npz")
    req = urllib.request.Request(link.get_attribute("href"), headers={"X-Kflow-Token": server.token})
    with urllib.request.urlopen(req, timeout=30) as r:
        z = np.load(io.BytesIO(r.read()), allow_pickle=False)
        return link.get_attribute("data-job"), {k: z[k] for k in z.files}


def finished(drv, previous=None):
    """Wait until a job other than `previous` is shown (or an error appears)."""

    def done(d):
        err = d.find_element("id", "error").text
        job = d.find_element("id", "download-npz").get_attribute("data-job")
        busy = d.find_element("id", "generate").get_attribute("disabled")
        return err or (job and job != previous and not busy)

    wait_for(drv, done)
    assert drv.find_element("id", "error").text == ""


def test_generate_keep_band_0_redraw_the_rest(browser, server):
    d = browser
    d.get(server.open_url)  # the printed address, with its token
    wait_for(d, lambda d: "K-Flow" in d.find_element("id", "facts-line").text)
    d.find_element("id", "gen-n").clear()
    d.find_element("id", "gen-n").send_keys("6")
    d.find_element("id", "generate").click()
    finished(d)
    job1, a = npz_offered(d, server)
    assert a["x"].shape == (6, 1, 8, 8)
    assert d.find_element("id", "panel-0").get_attribute("naturalWidth") != "0"  # the picture loaded

    d.find_element("id", "keep-band-0").click()
    d.find_element("id", "regenerate").click()
    finished(d, previous=job1)
    job2, b = npz_offered(d, server)
    assert job2 != job1
    band = a["band_of_coefficient"]
    assert np.array_equal(a["noise_coefficients"][:, band == 0], b["noise_coefficients"][:, band == 0])
    assert (a["noise_coefficients"][:, band != 0] != b["noise_coefficients"][:, band != 0]).all()
    assert not np.array_equal(a["x"], b["x"])
    assert json.loads(str(b["settings"]))["keep_bands"] == [0]
    assert "bands [0] kept" in d.find_element("id", "message").text


def test_a_non_image_upload_is_an_error_on_the_page(browser, server, tmp_path):
    d = browser
    d.get(server.open_url)
    wait_for(d, lambda d: "K-Flow" in d.find_element("id", "facts-line").text)
    d.find_element("id", "tab-edit").click()
    bogus = tmp_path / "notes.png"
    bogus.write_text("these are my notes, not a picture")
    d.find_element("id", "edit-file").send_keys(str(bogus))
    d.find_element("id", "edit-run").click()
    wait_for(d, lambda d: d.find_element("id", "error").text)
    assert "not an image" in d.find_element("id", "error").text
    # the server is still answering, and the page still works
    facts = urllib.request.Request(server.url + "api/facts", headers={"X-Kflow-Token": server.token})
    with urllib.request.urlopen(facts, timeout=10) as r:
        assert json.loads(r.read())["num_bands"] == 3
    d.find_element("id", "tab-generate").click()
    d.find_element("id", "generate").click()
    wait_for(d, lambda d: "samples" in d.find_element("id", "message").text)
