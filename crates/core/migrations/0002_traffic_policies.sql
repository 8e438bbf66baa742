-- How the inference API logs calls to each model: 'off', 'metadata' (no input/output text) or
-- 'full'; input redaction patterns (JSON array of regexes); traffic older than `retention_days`
-- is purged (NULL keeps it).
CREATE TABLE traffic_policies (
    model          TEXT    PRIMARY KEY,
    mode           TEXT    NOT NULL DEFAULT 'full' CHECK (mode IN ('off', 'metadata', 'full')),
    redact         TEXT    NOT NULL DEFAULT '[]',
    retention_days INTEGER CHECK (retention_days IS NULL OR retention_days > 0),
    updated_at     INTEGER NOT NULL
);
