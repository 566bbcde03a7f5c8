"""The demo end to end in a real browser: Debian's Chromium, headless, driven by Selenium.

The app runs in this process on 127.0.0.1 (a free port) over tiny pipelines built in code
(the ``demo_root`` fixture of test_demo.py). Chromium may reach 127.0.0.1 only (every other host
name resolves to nothing), and every request the page makes is checked to be local: the demo
works offline. Screenshots are saved to reports/demo_screenshot.png (the flat view),
reports/demo_screenshot_raw.png, reports/demo_screenshot_bad_seed.png (a seed of 2**64: a message, the inputs and
outputs kept) and reports/demo_screenshot_photo.png (a photo refused) (git-ignored).

Skipped only when /usr/bin/chromium is missing and CI is not set; under CI it must run
(``.ci/run`` installs Chromium with apt when it is missing).
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw
from test_demo import demo_root  # noqa: F401 - a fixture shared with the unit tests

from t2p_utils.config import Paths
from t2p_utils.demo import app as D

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path(os.environ.get("T2P_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("T2P_CHROMEDRIVER", "/usr/bin/chromedriver"))
SCREENSHOT = REPO / "reports" / "demo_screenshot.png"  # the flat view, as the page opens on an output
SCREENSHOT_RAW = SCREENSHOT.with_name("demo_screenshot_raw.png")  # the same outputs, raw
SCREENSHOT_SEED = SCREENSHOT.with_name("demo_screenshot_bad_seed.png")  # a seed of 2**64: message, all kept
SCREENSHOT_PHOTO = SCREENSHOT.with_name("demo_screenshot_photo.png")  # a photo refused, the outputs cleared
IN_CI = os.environ.get("CI", "").lower() not in ("", "0", "false")

if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
    if IN_CI:
        pytest.fail(f"CI is set but {CHROMIUM} or {CHROMEDRIVER} is missing: .ci/run installs them with "
                    "`apt-get install -y chromium chromium-driver`", pytrace=False)
    pytest.skip(f"{CHROMIUM} or {CHROMEDRIVER} is missing (install: apt-get install -y chromium chromium-driver)",
                allow_module_level=True)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("one_thread")]  # one_thread: tests/conftest.py


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(demo_root: Paths) -> Iterator[tuple[str, D.DemoApp]]:  # noqa: F811 - the imported fixture
    D.clear_cache()
    app = D.launch_demo("smoke", host="127.0.0.1", port=free_port(), root=demo_root.root, device="cpu")
    try:
        yield app.blocks.local_url, app
    finally:
        app.blocks.close()
        D.clear_cache()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must not look for (or download) a browser or driver
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1400,2200",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
                 "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"):  # offline: only the app is reachable
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(options=opts, service=Service(executable_path=str(CHROMEDRIVER)))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def requested_urls(driver: Any) -> list[str]:
    urls = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") == "Network.requestWillBeSent":
            urls.append(msg["params"]["request"]["url"])
    return urls


def badges(driver: Any) -> list[str]:
    """Visible status badges Gradio puts over components when an event fails ("Error")."""
    return driver.execute_script(
        "return [...document.querySelectorAll('.error, .validation-error')]"
        ".filter(e => e.offsetParent !== null && e.textContent.trim()).map(e => e.textContent.trim())")


def test_upload_type_click_and_see_every_model(app_url: tuple[str, D.DemoApp], browser: Any, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    url, app = app_url
    names = [m.name for m in app.models.values() if m.available]
    generated: list[int] = []  # one entry per model call (the app runs in this process)
    real_generate = D.generate_same_seed

    def counting_generate(*args: Any, **kwargs: Any) -> Any:
        generated.append(1)
        return real_generate(*args, **kwargs)

    monkeypatch.setattr(D, "generate_same_seed", counting_generate)
    assert names == ["ip2p_cnn_lstm", "ip2p_clip"]
    wait = WebDriverWait(browser, 60)

    def css(selector: str) -> tuple[str, str]:
        return By.CSS_SELECTOR, selector

    browser.get(url)
    run = wait.until(EC.element_to_be_clickable(css("#t2p-run")))
    models_box = browser.find_element(*css("#t2p-models")).text
    assert "CLIP captions (palette stand-in)" in models_box and "ip2p_reference" in models_box  # broken one listed

    # no line art yet: a message in the page, and the app keeps serving
    run.click()
    wait.until(EC.text_to_be_present_in_element(css("#t2p-message"), "No line art yet"))

    # upload a 300 x 200 line-art PNG (not square, not the model size), type an instruction, click
    png = tmp_path / "my drawing.png"
    drawing = Image.new("RGB", (300, 200), "white")
    pen = ImageDraw.Draw(drawing)
    pen.ellipse((40, 10, 260, 190), outline="black", width=8)  # a body with two eyes
    pen.ellipse((100, 60, 130, 90), outline="black", width=6)
    pen.ellipse((170, 60, 200, 90), outline="black", width=6)
    drawing.save(png)
    browser.find_element(*css("#t2p-lineart input[type=file]")).send_keys(str(png))
    wait.until(EC.presence_of_element_located(css("#t2p-lineart img")))
    box = browser.find_element(*css("#t2p-instruction textarea"))
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys("Turn it into a red creature with a #3a7bd5 belly")
    run.click()
    wait.until(EC.text_to_be_present_in_element(css("#t2p-message"), "Done"))
    message = browser.find_element(*css("#t2p-message")).text
    assert "seed 0" in message and "#3a7bd5 → asked as “blue”" in message, message

    def shown(name: str, width: int) -> Any:
        """The output image of ``name`` once it has loaded at ``width`` px."""
        def loaded(d: Any) -> Any:
            img = d.find_elements(By.CSS_SELECTOR, f"#t2p-out-{name} img")
            ok = img and d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img[0]) == width
            return img[0] if ok else False
        return wait.until(loaded)

    # the flat view by default: the drawing at its own size (300 x 200 padded to 300 x 300), with its layers
    assert browser.execute_script("return document.querySelector('#t2p-view input[value=flat]').checked")
    for name in names:
        img = shown(name, 300)
        assert browser.execute_script("return arguments[0].naturalHeight", img) == 300, name
        readout = browser.find_element(*css(f"#t2p-readout-{name}")).text
        assert "asked: red" in readout and "used:" in readout and "flat, 300×300, seed 0" in readout, readout
        assert "#3a7bd5" in readout, readout  # what became of the exact colour in this model's regions
        for kind in ("download", "flats", "lines"):
            assert browser.find_element(*css(f"#t2p-{kind}-{name}")).is_displayed(), (kind, name)
        assert "Coloured PNG (flat, 300×300)" in browser.find_element(*css(f"#t2p-download-{name}")).text
    browser.execute_script("document.querySelectorAll('.toast-close').forEach(b => b.click())")  # the first warning
    try:  # only for a clean screenshot
        WebDriverWait(browser, 15).until(lambda d: not d.find_elements(By.CSS_SELECTOR, ".toast-body"))
    except TimeoutException:
        pass
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOT))
    assert SCREENSHOT.stat().st_size > 10_000

    # raw is one click away, and nothing is generated again
    calls = len(generated)
    browser.find_element(*css("#t2p-view input[value=raw]")).click()
    for name in names:
        shown(name, 64)
        wait.until(EC.text_to_be_present_in_element(css(f"#t2p-readout-{name}"), "raw, 64×64, seed 0"))
        assert "Coloured PNG (raw, 64×64)" in browser.find_element(*css(f"#t2p-download-{name}")).text
    browser.find_element(*css("#t2p-transparent input")).click()  # the layers on white: written, not generated
    wait.until(EC.text_to_be_present_in_element(css(f"#t2p-flats-{names[0]}"), "white background"))
    assert len(generated) == calls, "switching the view regenerated"
    browser.save_screenshot(str(SCREENSHOT_RAW))
    browser.find_element(*css("#t2p-view input[value=flat]")).click()
    shown(names[0], 300)

    # a seed out of range (issue 22): one message naming the range; no "Error" badge; the page is not reloaded, the
    # upload, the instruction, the seed as typed and the outputs all stay; no model runs
    seed_box = browser.find_element(*css("#t2p-seed input"))
    browser.execute_script("window.t2pNotReloaded = true")
    out_src = browser.find_element(*css(f"#t2p-out-{names[0]} img")).get_attribute("src")
    calls = len(generated)
    for bad, why in (("-1", "-1 is negative"), ("18446744073709551616", "is too large")):
        seed_box.send_keys(Keys.CONTROL, "a")
        seed_box.send_keys(bad, Keys.TAB)
        run.click()
        wait.until(EC.text_to_be_present_in_element(css("#t2p-message"), why))
        message = browser.find_element(*css("#t2p-message")).text
        assert f"from 0 to {D.MAX_SEED}" in message, message
        assert browser.execute_script("return window.t2pNotReloaded === true"), f"seed {bad} reloaded the page"
        assert badges(browser) == [], (bad, badges(browser))
        assert browser.find_element(*css("#t2p-lineart img")).get_attribute("src").endswith("my%20drawing.png") or \
            "my drawing" in browser.find_element(*css("#t2p-lineart img")).get_attribute("src")
        assert box.get_attribute("value") == "Turn it into a red creature with a #3a7bd5 belly"
        assert float(seed_box.get_attribute("value")) == float(bad)  # as typed, to be corrected
        for name in names:
            assert browser.find_element(*css(f"#t2p-out-{name} img")).is_displayed(), (bad, name)
        assert browser.find_element(*css(f"#t2p-out-{names[0]} img")).get_attribute("src") == out_src
    assert len(generated) == calls, "a bad seed reached the models"
    assert browser.find_elements(By.CSS_SELECTOR, ".toast-body") == []  # one message: the line above the outputs
    browser.save_screenshot(str(SCREENSHOT_SEED))

    # even a reload keeps the inputs (they live in the browser's storage), the bad seed included
    browser.refresh()
    run = wait.until(EC.element_to_be_clickable(css("#t2p-run")))
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#t2p-instruction textarea").get_attribute("value")
               == "Turn it into a red creature with a #3a7bd5 belly")
    wait.until(EC.presence_of_element_located(css("#t2p-lineart img")))
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#t2p-seed input").get_attribute("value")
               == "18446744073709552000")  # a float in JavaScript: refused again with the same message
    box = browser.find_element(*css("#t2p-instruction textarea"))
    seed_box = browser.find_element(*css("#t2p-seed input"))
    seed_box.send_keys(Keys.CONTROL, "a")
    seed_box.send_keys("7", Keys.TAB)
    run.click()
    wait.until(EC.text_to_be_present_in_element(css("#t2p-message"), "seed 7"))
    for name in names:
        shown(name, 300)
    calls = len(generated)

    # an empty instruction: a message, the outputs stay
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(Keys.DELETE)
    run.click()
    wait.until(EC.text_to_be_present_in_element(css("#t2p-message"), "instruction is empty"))
    assert browser.find_element(*css(f"#t2p-out-{names[0]} img")).is_displayed()

    # a file that is not an image (the browser sends anything named .png): our message, not a bare "Error"
    broken = tmp_path / "broken.png"
    broken.write_text("this is not a picture")
    browser.find_element(*css("#t2p-lineart input[type=file]")).send_keys(str(broken))
    box.send_keys("Turn it into a red creature")
    wait.until(lambda d: d.execute_script(
        "const i = document.querySelector('#t2p-lineart img'); return i && i.src.endsWith('broken.png')"))
    run.click()
    wait.until(EC.text_to_be_present_in_element(css("#t2p-message"), "broken.png is not an image the demo can read"))

    # a photo (a colour gradient): the demo says it does not look like line art
    photo = tmp_path / "photo.png"
    Image.merge("RGB", [Image.linear_gradient("L").resize((200, 200)), Image.radial_gradient("L").resize((200, 200)),
                        Image.linear_gradient("L").rotate(90).resize((200, 200))]).save(photo)
    browser.find_element(*css("#t2p-lineart input[type=file]")).send_keys(str(photo))
    wait.until(lambda d: d.execute_script(
        "const i = document.querySelector('#t2p-lineart img'); return i && i.src.endsWith('photo.png')"))
    run.click()
    wait.until(EC.text_to_be_present_in_element(css("#t2p-message"), "does not look like line art"))
    message = browser.find_element(*css("#t2p-message")).text
    assert "looks like a colour image" in message and "% of its pixels are coloured" in message, message
    wait.until(lambda d: not d.find_elements(By.CSS_SELECTOR, f"#t2p-out-{names[0]} img"))  # outputs of another drawing
    assert all(not browser.find_elements(By.CSS_SELECTOR, f"#t2p-out-{n} img") for n in names)
    assert badges(browser) == []
    browser.save_screenshot(str(SCREENSHOT_PHOTO))

    # a black page and a fully transparent one: refused, saying why
    for what, img, why in (("black.png", Image.new("RGB", (200, 200), "black"), "mostly dark"),
                           ("clear.png", Image.new("RGBA", (200, 200), (0, 0, 0, 0)), "blank")):
        img.save(tmp_path / what)
        browser.find_element(*css("#t2p-lineart input[type=file]")).send_keys(str(tmp_path / what))
        wait.until(lambda d, w=what: d.execute_script(
            "const i = document.querySelector('#t2p-lineart img'); return i && i.src.endsWith(arguments[0])", w))
        run.click()
        wait.until(EC.text_to_be_present_in_element(css("#t2p-message"), why))
        assert "line art" in browser.find_element(*css("#t2p-message")).text
    assert len(generated) == calls, "a refused input reached the models"

    # picking a held-out test character puts its line art in the input
    first = app.gallery[0][0]
    browser.find_element(*css("#t2p-gallery button.thumbnail-item")).click()
    wait.until(lambda d: (d.execute_script(
        "const i = document.querySelector('#t2p-lineart img'); return i && i.src") or "").endswith(Path(first).name))
    width = browser.execute_script("return document.querySelector('#t2p-lineart img').getBoundingClientRect().width")
    assert width > 150, f"the picked {Image.open(first).width} px character is shown {width:.0f} px wide"

    assert not Path(D.__file__).with_suffix(".pyi").exists()  # no gr.Image subclass: Gradio writes no stub
    urls = requested_urls(browser)
    assert any(u.startswith(url.rstrip("/")) for u in urls), "no network log"
    remote = [u for u in urls if u.startswith(("http:", "https:", "ws:", "wss:"))  # not chrome://, data:, blob:
              and not u.startswith((url.rstrip("/"), url.rstrip("/").replace("http", "ws", 1)))]
    assert remote == [], f"the page asked the network for {remote[:5]}"
