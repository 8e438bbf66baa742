-- The inference API answers every call with an id (`call_…`) a client later attaches feedback to.
-- A call with several inputs is logged as several results sharing the id (meta.index says which).
ALTER TABLE results ADD COLUMN call_id TEXT;
CREATE INDEX results_by_call ON results (call_id) WHERE call_id IS NOT NULL;
