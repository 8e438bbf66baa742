"""Desktop end-to-end test: the real Tauri window (WebKitGTK) under Xvfb, driven through
tauri-driver and Debian's WebKitWebDriver with Selenium. The playground compares two local
models, feedback is given in the window, found in the SQLite log, and still shown after a reload;
Settings turns the local inference API on (another program calls it with the token shown) and off.
Started without ONNX Runtime, the app still opens and says why, and what to do, in the window.

Run by `./dev test` as: xvfb-run -a python tests/desktop_e2e.py APP TAURI_DRIVER
"""

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.options import ArgOptions
from selenium.webdriver.remote.client_config import ClientConfig
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = Path(os.environ.get("SCREENSHOTS", ROOT / "docs" / "screenshots"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def open_window(app: str, tauri_driver: str, data: str, fixtures: bool = True, extra_env: dict | None = None):
    """The app under tauri-driver with its own data dir and WebKit profile: (window, driver)."""
    # A fresh profile too: the window's local storage and remembered size live under XDG dirs.
    env = dict(
        os.environ,
        BENCHTOP_DATA_DIR=data,
        XDG_DATA_HOME=str(Path(data) / "xdg-data"),
        XDG_CONFIG_HOME=str(Path(data) / "xdg-config"),
    )
    if fixtures:
        env["BENCHTOP_MODELS_DIR"] = str(ROOT / "models" / "fixtures")
    env.update(extra_env or {})
    port, native = free_port(), free_port()
    driver_proc = subprocess.Popen(
        [tauri_driver, "--port", str(port), "--native-port", str(native)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    options = ArgOptions()
    options.set_capability("browserName", "wry")
    options.set_capability("tauri:options", {"application": app})
    # tauri-driver takes connections a moment before the native driver behind it is up.
    deadline = time.time() + 30
    while True:
        try:
            url = f"http://127.0.0.1:{port}"
            # A bounded wait: an app that cannot start must fail the test, not hang it.
            config = ClientConfig(remote_server_addr=url, timeout=60)
            return webdriver.Remote(url, options=options, client_config=config), driver_proc
        except Exception:  # noqa: BLE001 — retried until the deadline, then raised
            if time.time() > deadline:
                driver_proc.terminate()
                raise
            time.sleep(0.5)


def local_api_on(window, wait) -> tuple[str, str]:
    """Settings turns the local inference API on; its URL and (revealed) token as shown."""
    css = lambda s: wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, s)))  # noqa: E731
    css('a[href="/settings"]').click()
    css(".local-api input[type=checkbox]").click()
    url = css(".local-api dd.mono").text
    css(".local-api button.small").click()
    shown = lambda _: window.find_elements(By.CSS_SELECTOR, ".local-api dd.mono")[1].text.split()[0]  # noqa: E731
    token = wait.until(lambda d: "•" not in shown(d) and shown(d))
    return url, token


def local_api_off(window, wait) -> None:
    """Settings turns the local inference API off (the page stops showing its URL)."""
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, ".local-api input[type=checkbox]"))).click()
    wait.until(lambda _: not window.find_elements(By.CSS_SELECTOR, ".local-api dd.mono"))


def call_api(url: str, token: str, path: str, body: dict) -> dict:
    """POST `body` to the local API as another program would, with the bearer token."""
    request = urllib.request.Request(
        f"{url}{path}",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.load(answer)


def main(app: str, tauri_driver: str) -> None:
    data = tempfile.mkdtemp(prefix="benchtop-desktop-")
    window, driver_proc = open_window(app, tauri_driver, data)
    # WebKitWebDriver can report an element as stale while React replaces it: look again.
    wait = WebDriverWait(window, 60, ignored_exceptions=(StaleElementReferenceException,))
    checks = 0
    try:
        css = lambda s: wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, s)))  # noqa: E731
        assert window.execute_script("return typeof window.__TAURI_INTERNALS__") == "object", "inside Tauri"
        mode = css(".nav .mode").text
        assert mode == "desktop", f"the UI uses the IPC transport, not HTTP: {mode}"
        checks += 1

        # The playground compares a local classifier and a local generator, side by side.
        for target in ("support-triage", "tiny-qwen2"):
            box = css(f'input[data-target="{target}"]')
            if not box.is_selected():
                box.click()
        question = "My card was charged twice for the annual plan"
        field = css('[data-testid="playground-input"]')
        field.clear()
        field.send_keys(question)
        wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, ".inputs button.primary"))).click()
        css('article.answer[data-target="support-triage"] footer')
        css('article.answer[data-target="tiny-qwen2"] footer')
        label = css('article.answer[data-target="support-triage"] .label').text
        assert label == "billing", label
        generated = css('article.answer[data-target="tiny-qwen2"] .output-md').text
        assert generated.strip(), "the generator's answer arrived over the Channel"
        checks += 2
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        window.save_screenshot(str(SCREENSHOTS / "desktop-playground.png"))

        # Feedback in the window lands in the feedback log.
        bar = css('article.answer[data-target="support-triage"] .feedback')
        result_id = int(bar.get_attribute("data-result"))
        bar.find_element(By.CSS_SELECTOR, '[aria-label="4 stars"]').click()
        wait.until(lambda _: bar.find_element(By.CSS_SELECTOR, '[aria-label="4 stars"]').get_attribute("aria-checked") == "true")
        db = sqlite3.connect(Path(data) / "benchtop.db")
        rows = db.execute(
            "SELECT kind, value, source FROM feedback WHERE result_id = ?", (result_id,)
        ).fetchall()
        db.close()
        assert [(k, json.loads(v)["stars"], s) for k, v, s in rows] == [("rating", 4, "human")], rows
        checks += 1

        # After a reload, History finds the answer with its rating.
        window.refresh()
        css('a[href="/history"]').click()
        css('input[type="search"]').send_keys("annual plan")
        css("form.search button").click()
        css(f'li[data-result="{result_id}"] button.hit').click()
        wait.until(
            lambda _: window.find_element(
                By.CSS_SELECTOR, f'li[data-result="{result_id}"] [aria-label="4 stars"]'
            ).get_attribute("aria-checked")
            == "true"
        )
        checks += 1
        window.save_screenshot(str(SCREENSHOTS / "desktop-history.png"))

        # Settings turns the local inference API on: other programs can call it with the token.
        url, token = local_api_on(window, wait)
        body = call_api(url, token, "/v1/predict", {"model": "support-triage", "input": "I was charged twice"})
        assert body["data"][0]["label"] == "billing", body
        local_api_off(window, wait)
        try:
            urllib.request.urlopen(f"{url}/healthz", timeout=5)
            raise AssertionError("the API still answers after it was turned off")
        except urllib.error.URLError:
            pass
        checks += 1
    finally:
        window.quit()
        driver_proc.terminate()
        driver_proc.wait(timeout=10)
        shutil.rmtree(data, ignore_errors=True)
    checks += startup_failure_is_shown(app, tauri_driver)
    print(f"desktop e2e: {checks} checks passed")


def startup_failure_is_shown(app: str, tauri_driver: str) -> int:
    """Without ONNX Runtime the app still opens its window and says why, with the way out, where
    the playground's models would be (it used to exit with a line on stderr)."""
    data = tempfile.mkdtemp(prefix="benchtop-desktop-broken-")
    missing = str(Path(data) / "no-such-onnxruntime.so")
    window, driver_proc = open_window(app, tauri_driver, data, extra_env={"BENCHTOP_ORT_LIB": missing})
    try:
        wait = WebDriverWait(window, 30)
        error = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, ".error")))
        text = wait.until(lambda _: error.text.strip() and error.text)
        assert "ONNX Runtime could not be loaded" in text and "BENCHTOP_ORT_LIB" in text and missing in text, text
        return 1
    finally:
        window.quit()
        driver_proc.terminate()
        driver_proc.wait(timeout=10)
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: desktop_e2e.py APP TAURI_DRIVER")
    main(sys.argv[1], sys.argv[2])
