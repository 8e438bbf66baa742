#!/usr/bin/env python3
"""The baseline for Benchtop's export benchmark: the export a team would write by hand with the
standard library — `sqlite3` + `json` — producing the same rows and columns as
`benchtop export --format jsonl` (results with their run, target, case and the feedback in force:
latest event per kind, undone events skipped, assertion thumbs as `passed`).

`python_export.py DB_PATH OUT.jsonl`
"""
import json
import sqlite3
import sys

RESULTS = """
SELECT r.id, r.run_id, ru.name, t.name, t.kind, r.case_id, c.vars, c.expected, c.tags, r.input,
       r.input_hash, r.output, r.label, r.scores, r.error, r.latency_ms, r.ttft_ms, r.tokens_in,
       r.tokens_out, r.cost_usd, r.created_at
FROM results r JOIN runs ru ON ru.id = r.run_id JOIN targets t ON t.id = r.target_id
LEFT JOIN cases c ON c.id = r.case_id ORDER BY r.id
"""
FEEDBACK = "SELECT result_id, id, value, source FROM feedback WHERE kind <> 'preference' ORDER BY result_id, id"


def apply(row, events):
    undone = {e[1]["feedback_id"] for e in events if e[1]["kind"] == "undo"}
    tags = {}
    for fid, value, source in ((e[0], e[1], e[2]) for e in events):
        if fid in undone:
            continue
        kind = value["kind"]
        if kind == "thumb" and source == "assertion":
            row["passed"] = value["up"]
        elif kind == "thumb":
            row["thumb"], row["thumb_source"] = value["up"], source
        elif kind == "rating":
            row["rating"], row["rating_source"] = value["stars"], source
        elif kind == "correction":
            row["correction_text"], row["correction_label"], row["correction_source"] = value.get("text"), value.get("label"), source
        elif kind == "tag":
            tags[value["tag"]] = value["present"]
        elif kind == "note":
            row["note"] = value["text"]
    row["tags"] = [t for t, present in tags.items() if present]


def main():
    db, out_path = sys.argv[1], sys.argv[2]
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    feedback = conn.cursor().execute(FEEDBACK)
    pending = feedback.fetchone()
    with open(out_path, "w", encoding="utf-8") as out:
        for r in conn.cursor().execute(RESULTS):
            events = []
            while pending is not None and pending[0] <= r[0]:
                if pending[0] == r[0]:
                    events.append((pending[1], json.loads(pending[2]), pending[3]))
                pending = feedback.fetchone()
            row = {
                "result_id": r[0], "split": "data", "run": r[2], "target": r[3], "target_kind": r[4], "case_id": r[5],
                "input": r[9], "vars": json.loads(r[6]) if r[6] else None, "output": r[11], "label": r[12],
                "scores": json.loads(r[13]) if r[13] else None, "expected": r[7], "gold_label": None, "error": r[14],
                "latency_ms": r[15], "ttft_ms": r[16], "tokens_in": r[17], "tokens_out": r[18], "cost_usd": r[19],
                "thumb": None, "thumb_source": None, "rating": None, "rating_source": None, "correction_text": None,
                "correction_label": None, "correction_source": None, "tags": [],
                "case_tags": json.loads(r[8]) if r[8] else [], "note": None, "passed": None, "input_hash": r[10],
                "created_at": r[20],
            }
            apply(row, events)
            row["gold_label"] = row["correction_label"] or row["expected"] or row["label"]
            out.write(json.dumps(row, ensure_ascii=False))
            out.write("\n")


if __name__ == "__main__":
    main()
