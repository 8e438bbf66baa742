"""Desktop app benchmarks (docs/benchmarks.md, "Workbench UI"): cold start to an interactive
playground, and the idle memory of the app's process tree with the default models loaded.

  xvfb-run -a python bench/desktop_start.py APP TAURI_DRIVER

Cold start: the app is launched 6 times (the first warms the OS page cache and is not counted);
it prints BENCHTOP_INTERACTIVE_MS when the UI has listed its targets (the `ui_ready` command).
Memory: the app, driven through tauri-driver, loads both default models the way a user would —
it classifies a message with `support-triage` in the playground, then Settings turns the local
API on, a client embeds a text with `minilm-l6-v2` through it, and the API is turned off again —
then idles 5 s; RSS and PSS are summed over the app and its WebKit child processes (PSS counts
shared pages once), and given per process.
"""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))


def cold_starts(app: str, runs: int = 6) -> list[float]:
    data = tempfile.mkdtemp(prefix="benchtop-start-")
    env = dict(os.environ, BENCHTOP_DATA_DIR=data, BENCHTOP_STARTUP_TRACE="1", XDG_DATA_HOME=f"{data}/xdg")
    times = []
    for _ in range(runs):
        proc = subprocess.Popen([app], env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        deadline = time.time() + 30
        for line in proc.stderr:
            if line.startswith("BENCHTOP_INTERACTIVE_MS="):
                times.append(float(line.split("=", 1)[1]))
                break
            if time.time() > deadline:
                break
        proc.terminate()
        proc.wait(timeout=10)
    return times[1:]


def tree(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def memory_kb(pid: int) -> tuple[int, int]:
    rss = pss = 0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Rss:"):
                rss += int(line.split()[1])
            elif line.startswith("Pss:"):
                pss += int(line.split()[1])
    except OSError:
        pass
    return rss, pss


def idle_memory(app: str, tauri_driver: str) -> list[tuple[str, int, int]]:
    """(process name, RSS kB, PSS kB) for each process of the app's tree."""
    import desktop_e2e  # the same driver set-up as the desktop test
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    data = tempfile.mkdtemp(prefix="benchtop-mem-")
    window, driver_proc = desktop_e2e.open_window(app, tauri_driver, data, fixtures=False)
    try:
        wait = WebDriverWait(window, 60, ignored_exceptions=(StaleElementReferenceException,))
        css = lambda s: wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, s)))  # noqa: E731
        css('input[data-target="support-triage"]').click()
        css('[data-testid="playground-input"]').send_keys("I was charged twice this month")
        css(".inputs button.primary").click()
        css('article.answer[data-target="support-triage"] footer')
        url, token = desktop_e2e.local_api_on(window, wait)
        body = desktop_e2e.call_api(url, token, "/v1/embeddings", {"model": "minilm-l6-v2", "input": "I was charged twice"})
        assert len(body["data"][0]["embedding"]) == 384
        desktop_e2e.local_api_off(window, wait)
        time.sleep(5)
        app_pid = int(subprocess.check_output(["pgrep", "-n", "-f", app]).split()[0])
        out = []
        for pid in tree(app_pid):
            try:
                name = Path(f"/proc/{pid}/comm").read_text().strip()
            except OSError:
                continue
            out.append((name, *memory_kb(pid)))
        return out
    finally:
        window.quit()
        driver_proc.terminate()


def main(app: str, tauri_driver: str) -> None:
    times = cold_starts(app)
    if times:
        s = sorted(times)
        print(f"desktop cold start to an interactive playground: median {s[len(s) // 2]:.0f} ms (min {s[0]:.0f}, max {s[-1]:.0f}) over {len(s)} starts (target <= 1500 ms)")
    else:
        print("desktop cold start: the app never reported BENCHTOP_INTERACTIVE_MS")
    processes = idle_memory(app, tauri_driver)
    rss, pss = sum(p[1] for p in processes), sum(p[2] for p in processes)
    each = ", ".join(f"{name} {r / 1024:.0f}/{p / 1024:.0f}" for name, r, p in processes)
    print(f"desktop idle memory with both default models loaded: RSS {rss / 1024:.0f} MB, PSS {pss / 1024:.0f} MB over {len(processes)} processes (RSS/PSS MB: {each}) (target <= 250 MB)")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
