#!/usr/bin/env python3
"""Print the engine-overhead table from criterion's results (target/criterion/…/new/estimates.json):
end-to-end `embed` / `classify` time over raw `session.run` time, per model and batch size."""
import json
import sys
from pathlib import Path

root = Path(sys.argv[1] if len(sys.argv) > 1 else "target/criterion")


def median_ms(model: str, bench: str, batch: int) -> float:
    estimates = json.loads((root / model / bench / str(batch) / "new" / "estimates.json").read_text())
    return estimates["median"]["point_estimate"] / 1e6


print("| model | batch | raw session.run, median ms | engine end-to-end, median ms | ratio (target ≤ 1.05) |")
print("|---|---|---|---|---|")
for model in ["minilm-l6-v2", "support-triage"]:
    for batch in [1, 32]:
        raw, engine = median_ms(model, "raw_session_run", batch), median_ms(model, "engine_end_to_end", batch)
        print(f"| {model} | {batch} | {raw:.3f} | {engine:.3f} | {engine / raw:.3f} |")
