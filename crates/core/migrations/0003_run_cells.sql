-- Comparison runs: one result per (run, case, target) cell — a resumed run never records a cell
-- twice — and fast lookups of earlier answers by cache key.
CREATE UNIQUE INDEX results_one_per_cell ON results (run_id, case_id, target_id) WHERE case_id IS NOT NULL;
CREATE INDEX results_by_cache_key ON results (cache_key) WHERE cache_key IS NOT NULL;
