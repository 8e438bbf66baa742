-- Benchtop's feedback log, version 1. Forward-only: later versions add files, never edit this one.
-- Times are Unix milliseconds (UTC). JSON columns hold JSON text.

CREATE TABLE targets (
    id          INTEGER PRIMARY KEY,
    kind        TEXT    NOT NULL CHECK (kind IN ('local', 'remote')),
    name        TEXT    NOT NULL,
    fingerprint TEXT    NOT NULL UNIQUE,
    config      TEXT    NOT NULL DEFAULT '{}',
    created_at  INTEGER NOT NULL
);

CREATE TABLE prompt_templates (
    id         INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL,
    system     TEXT,
    template   TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE test_sets (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE,
    description TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE cases (
    id           INTEGER PRIMARY KEY,
    test_set_id  INTEGER NOT NULL REFERENCES test_sets (id) ON DELETE CASCADE,
    position     INTEGER NOT NULL,
    vars         TEXT    NOT NULL,
    expected     TEXT,
    tags         TEXT    NOT NULL DEFAULT '[]',
    content_hash TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    UNIQUE (test_set_id, content_hash)
);
CREATE INDEX cases_by_set ON cases (test_set_id, position);

-- kind: 'batch' (test set x targets), 'adhoc' (one input), 'traffic' (the inference API's calls).
CREATE TABLE runs (
    id          INTEGER PRIMARY KEY,
    kind        TEXT    NOT NULL CHECK (kind IN ('batch', 'adhoc', 'traffic')),
    name        TEXT    NOT NULL,
    test_set_id INTEGER REFERENCES test_sets (id) ON DELETE SET NULL,
    template_id INTEGER REFERENCES prompt_templates (id) ON DELETE SET NULL,
    status      TEXT    NOT NULL DEFAULT 'running'
                CHECK (status IN ('pending', 'running', 'done', 'cancelled', 'failed')),
    config      TEXT    NOT NULL DEFAULT '{}',
    created_at  INTEGER NOT NULL,
    finished_at INTEGER
);

CREATE TABLE results (
    id         INTEGER PRIMARY KEY,
    run_id     INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    case_id    INTEGER REFERENCES cases (id) ON DELETE SET NULL,
    target_id  INTEGER NOT NULL REFERENCES targets (id),
    input      TEXT    NOT NULL,
    input_hash TEXT    NOT NULL,
    output     TEXT,
    label      TEXT,
    scores     TEXT,
    error      TEXT,
    latency_ms REAL,
    ttft_ms    REAL,
    tokens_in  INTEGER,
    tokens_out INTEGER,
    cost_usd   REAL,
    cache_key  TEXT,
    meta       TEXT    NOT NULL DEFAULT '{}',
    created_at INTEGER NOT NULL
);
CREATE INDEX results_by_run ON results (run_id, id);
CREATE INDEX results_by_target ON results (target_id, id);
CREATE INDEX results_by_case ON results (case_id);
CREATE INDEX results_by_time ON results (created_at);
CREATE INDEX results_by_input ON results (input_hash);

-- Append-only. An 'undo' event names the event it takes back in `undoes`. A preference is given
-- on `result_id` (A) against `other_result_id` (B); `shown_left` says which was on the left and
-- `blind` whether target names were hidden.
CREATE TABLE feedback (
    id              INTEGER PRIMARY KEY,
    result_id       INTEGER NOT NULL REFERENCES results (id) ON DELETE CASCADE,
    other_result_id INTEGER REFERENCES results (id) ON DELETE CASCADE,
    kind            TEXT    NOT NULL
                    CHECK (kind IN ('thumb', 'rating', 'preference', 'correction', 'tag', 'note', 'undo')),
    value           TEXT    NOT NULL,
    source          TEXT    NOT NULL DEFAULT 'human' CHECK (source IN ('human', 'assertion', 'judge')),
    annotator       TEXT,
    blind           INTEGER,
    shown_left      INTEGER,
    undoes          INTEGER REFERENCES feedback (id),
    created_at      INTEGER NOT NULL
);
CREATE INDEX feedback_by_result ON feedback (result_id, kind, id);
CREATE INDEX feedback_by_other ON feedback (other_result_id);
CREATE INDEX feedback_by_kind ON feedback (kind, id);
CREATE INDEX feedback_undoes ON feedback (undoes);

-- Feedback still in force: not undone, and for each result the latest event of each kind (for
-- tags, of each tag; for preferences, of each pair).
CREATE VIEW feedback_current AS
SELECT f.*
FROM feedback f
WHERE f.kind <> 'undo'
  AND NOT EXISTS (SELECT 1 FROM feedback u WHERE u.undoes = f.id)
  AND f.id = (
      SELECT max(g.id) FROM feedback g
      WHERE g.result_id = f.result_id
        AND g.kind = f.kind
        AND g.other_result_id IS f.other_result_id
        AND (g.kind <> 'tag' OR json_extract(g.value, '$.tag') = json_extract(f.value, '$.tag'))
        AND NOT EXISTS (SELECT 1 FROM feedback u2 WHERE u2.undoes = g.id)
  );

CREATE VIRTUAL TABLE results_fts USING fts5 (input, output, content = 'results', content_rowid = 'id');
CREATE TRIGGER results_fts_insert AFTER INSERT ON results BEGIN
    INSERT INTO results_fts (rowid, input, output) VALUES (new.id, new.input, coalesce(new.output, ''));
END;
CREATE TRIGGER results_fts_delete AFTER DELETE ON results BEGIN
    INSERT INTO results_fts (results_fts, rowid, input, output) VALUES ('delete', old.id, old.input, coalesce(old.output, ''));
END;
CREATE TRIGGER results_fts_update AFTER UPDATE OF input, output ON results BEGIN
    INSERT INTO results_fts (results_fts, rowid, input, output) VALUES ('delete', old.id, old.input, coalesce(old.output, ''));
    INSERT INTO results_fts (rowid, input, output) VALUES (new.id, new.input, coalesce(new.output, ''));
END;
