-- Remote providers the user set up (for the UI's playground and runs): how to reach each, and
-- the model ids offered for it. Keys are never stored here (see providers::ApiKey).
CREATE TABLE providers (
    name       TEXT    PRIMARY KEY,
    config     TEXT    NOT NULL,
    models     TEXT    NOT NULL DEFAULT '[]',
    updated_at INTEGER NOT NULL
);
