#!/usr/bin/env python3
"""`benchtop serve` against the usual Python service (bench/flask_app.py under gunicorn, 2 workers),
with one load generator (wrk) in the same run, on the same models; plus the engine's own
in-process throughput at its best batch size — the ceiling the server can approach.

For each endpoint (/v1/embeddings on minilm-l6-v2, /v1/predict on support-triage), one input per
request, concurrency 32: rounds alternate baseline and Benchtop (warm-up, then a timed wrk run
each) and the engine in-process; the table gives the median over rounds of requests/s and p99
latency. Benchtop runs with logging on (every call recorded in its feedback log) and its bearer
token checked. The engine's best configuration (batch size; one shared session or a replica per
core) is found once by a sweep before the rounds; each round then measures that configuration
again, so the served/engine ratio compares figures taken minutes, not a quarter hour, apart.

Run by `./dev bench`; needs wrk (apt) and the venv's flask + gunicorn.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TEXTS = [line for line in (REPO / "bench/texts.txt").read_text().splitlines() if line.strip()]
ENDPOINTS = [("/v1/embeddings", "minilm-l6-v2"), ("/v1/predict", "support-triage")]


def lua_script(path: str, model: str, token: str | None) -> str:
    """A wrk script cycling through the texts, one per request."""
    bodies = ",\n".join("[==[" + json.dumps({"model": model, "input": t}) + "]==]" for t in TEXTS)
    auth = f'wrk.headers["Authorization"] = "Bearer {token}"\n' if token else ""
    return (
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n' + auth +
        f"bodies = {{\n{bodies}\n}}\ni = 0\n"
        f"request = function()\n  i = i + 1\n  return wrk.format(nil, \"{path}\", nil, bodies[(i % #bodies) + 1])\nend\n"
        "response = function(status, headers, body)\n  if status ~= 200 then wrk.thread:stop() end\nend\n"
    )


def wrk(url: str, script: Path, seconds: int, connections: int) -> tuple[float, float, int]:
    """(requests/s, p99 ms, non-2xx count)."""
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
                         check=True, capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}[p99.group(2)]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return rps, float(p99.group(1)) * scale, int(bad.group(1)) if bad else 0


def wait_healthy(url: str, proc: subprocess.Popen, what: str) -> None:
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{what} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    sys.exit(f"{what} did not come up")


def engine_rates(example: Path, model: str, *config: str) -> dict[tuple[str, int], float]:
    """Texts/s of the engine in-process on random batches of the same texts, per (mode, batch):
    one shared multi-threaded session, or one single-threaded replica per core; all of them, or
    the one `config` names."""
    line = subprocess.run([str(example), model, str(REPO / "bench/texts.txt"), *config],
                          check=True, capture_output=True, text=True).stdout
    return {(mode, int(batch)): rate for mode, rates in json.loads(line).items() for batch, rate in rates.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--benchtop", type=Path, required=True)
    ap.add_argument("--example", type=Path, required=True, help="the `engine_ceiling` example binary")
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=32)
    args = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is missing (apt-get install wrk; ./dev bench installs it)")

    tmp = Path(tempfile.mkdtemp(prefix="benchtop-serve-bench-"))
    env = dict(os.environ, BENCHTOP_DATA_DIR=str(tmp / "data"))
    baseline = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", "2", "-b", "127.0.0.1:18081", "--log-level", "warning", "bench.flask_app:app"],
        cwd=REPO, env=env)
    benchtop = subprocess.Popen(
        [str(args.benchtop), "serve", "--listen", "127.0.0.1:18082", "--preload", "minilm-l6-v2", "--preload", "support-triage"],
        env=env, stdout=subprocess.DEVNULL)
    try:
        wait_healthy("http://127.0.0.1:18081", baseline, "gunicorn")
        wait_healthy("http://127.0.0.1:18082", benchtop, "benchtop serve")
        token = subprocess.run([str(args.benchtop), "token"], env=env, check=True, capture_output=True, text=True).stdout.strip()
        best = {model: max(engine_rates(args.example, model).items(), key=lambda kv: kv[1])[0] for _, model in ENDPOINTS}
        rows = []
        for path, model in ENDPOINTS:
            scripts = {}
            for name, token_ in (("baseline", None), ("benchtop", token)):
                scripts[name] = tmp / f"{name}-{model}.lua"
                scripts[name].write_text(lua_script(path, model, token_))
            urls = {"baseline": "http://127.0.0.1:18081", "benchtop": "http://127.0.0.1:18082"}
            got = {"baseline": [], "benchtop": [], "engine": []}
            mode, batch = best[model]
            for _ in range(args.rounds):
                for name in ("baseline", "benchtop"):
                    wrk(urls[name], scripts[name], 3, args.connections)  # warm-up
                    rps, p99, bad = wrk(urls[name], scripts[name], args.seconds, args.connections)
                    if bad:
                        sys.exit(f"{name} answered {bad} requests with an error on {path}")
                    got[name].append((rps, p99))
                got["engine"].append(engine_rates(args.example, model, mode, str(batch))[(mode, batch)])
            med = {n: (statistics.median(r for r, _ in got[n]), statistics.median(p for _, p in got[n]))
                   for n in ("baseline", "benchtop")}
            rows.append((path, model, med["baseline"], med["benchtop"], statistics.median(got["engine"]), got))
    finally:
        for proc in (baseline, benchtop):
            proc.send_signal(signal.SIGTERM)
        for proc in (baseline, benchtop):
            proc.wait(timeout=60)
    shutil.rmtree(tmp, ignore_errors=True)

    print(f"\nOne input per request, concurrency {args.connections}, wrk -t2, {args.rounds} rounds x {args.seconds} s each "
          "(median); Benchtop with token check and every call logged.\n")
    print("| endpoint | model | baseline req/s | Benchtop req/s | ratio (>= 1.4) | baseline p99 ms | Benchtop p99 ms | ratio (<= 0.5) | engine best texts/s (configuration) | served / engine (>= 0.85) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for path, model, (b_rps, b_p99), (t_rps, t_p99), rate, _ in rows:
        mode, batch = best[model]
        print(f"| {path} | {model} | {b_rps:.0f} | {t_rps:.0f} | {t_rps / b_rps:.2f} | {b_p99:.1f} | {t_p99:.1f} | "
              f"{t_p99 / b_p99:.2f} | {rate:.0f} ({mode}, batch {batch}) | {t_rps / rate:.2f} |")
    print("\nRounds (req/s, p99 ms; engine texts/s):")
    for path, *_, got in rows:
        print(f"- {path}: baseline {[(round(r), round(p, 1)) for r, p in got['baseline']]}, "
              f"benchtop {[(round(r), round(p, 1)) for r, p in got['benchtop']]}, "
              f"engine {[round(r) for r in got['engine']]}")


if __name__ == "__main__":
    main()
