#!/usr/bin/env python3
"""Export benchmark (issue 4): 1,000,000 results with feedback exported to JSONL and Parquet by
`benchtop export`, against `bench/python_export.py` (plain sqlite3 + json, same rows and columns),
in one run. Reports wall time, rows/s and peak RSS (each measured from a small fresh process).

The log is generated once by the `fill_log` example into the cache and reused.
`export_vs_python.py --benchtop BIN --fill-log BIN [--rows N] [--rounds R]`
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "models"))
from benchtop_models import cache_dir  # noqa: E402

MEASURE = """
import json, os, subprocess, sys, time
t = time.perf_counter()
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(proc.pid, 0)
print(json.dumps({"s": time.perf_counter() - t, "status": status, "maxrss_kib": usage.ru_maxrss}))
"""


def measure(cmd):
    out = subprocess.run([sys.executable, "-c", MEASURE, *map(str, cmd)], check=True, capture_output=True, text=True).stdout
    result = json.loads(out)
    if result["status"] != 0:
        sys.exit(f"failed: {' '.join(map(str, cmd))}")
    return result["s"], result["maxrss_kib"] / 1024


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--benchtop", type=Path, required=True)
    ap.add_argument("--fill-log", type=Path, required=True)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    data = cache_dir() / "bench" / f"export-{args.rows}"
    db = data / "benchtop.db"
    if not db.is_file():
        data.mkdir(parents=True, exist_ok=True)
        print(f"generating {args.rows} results in {db} (once)", flush=True)
        subprocess.run([str(args.fill_log), str(db), str(args.rows)], check=True)
    work = Path(tempfile.mkdtemp(prefix="benchtop-export-bench-"))
    times = {"benchtop jsonl": [], "benchtop parquet": [], "python jsonl": []}
    rss = {k: [] for k in times}
    try:
        for _ in range(args.rounds):
            for name, cmd in [
                ("benchtop jsonl", [args.benchtop, "--data-dir", data, "export", "--format", "jsonl", "--out", work / "jsonl"]),
                ("benchtop parquet", [args.benchtop, "--data-dir", data, "export", "--format", "parquet", "--out", work / "parquet"]),
                ("python jsonl", [sys.executable, Path(__file__).parent / "python_export.py", db, work / "python.jsonl"]),
            ]:
                # Every exporter starts alike: its previous output gone and earlier writes on disk
                # (neither timed), so no run pays for another's deletes or write-back.
                for old in [work / "jsonl", work / "parquet"]:
                    if name.endswith(old.name) and name.startswith("benchtop"):
                        shutil.rmtree(old, ignore_errors=True)
                if name.startswith("python"):
                    (work / "python.jsonl").unlink(missing_ok=True)
                os.sync()
                s, mib = measure(cmd)
                times[name].append(s)
                rss[name].append(mib)
        with open(work / "jsonl" / "data.jsonl", encoding="utf-8") as a, open(work / "python.jsonl", encoding="utf-8") as b:
            same = sum(1 for x, y in zip(a, b) if json.loads(x) == json.loads(y))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    python = statistics.median(times["python jsonl"])
    print(f"{args.rows} results, {args.rounds} rounds, median wall time; Benchtop's JSONL rows equal Python's in {same} of {args.rows} rows\n")
    print("| exporter | wall s | rows/s | peak RSS MiB | speed-up vs Python |")
    print("|---|---|---|---|---|")
    for name in times:
        t = statistics.median(times[name])
        print(f"| {name} | {t:.2f} | {args.rows / t:,.0f} | {max(rss[name]):.0f} | {python / t:.1f}× |")


if __name__ == "__main__":
    main()
