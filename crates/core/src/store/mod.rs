//! The feedback log: everything tried and judged, kept in one SQLite file.
//!
//! - One writer thread commits all writes in batched transactions ([`writer`]); a write is
//!   acknowledged only after its commit, so a crash (even `kill -9`) loses nothing acknowledged.
//! - Reads use their own connections (WAL mode), so they never wait for a long write.
//! - The schema is versioned ([`migrate`]); newer or foreign databases are refused untouched.

mod error;
mod export_query;
pub mod migrate;
mod types;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

pub use error::StoreError;
pub use export_query::{ExportFilter, ExportRow, PreferencePair, Sourced};
pub use migrate::SCHEMA_VERSION;
pub use types::*;
use writer::Writer;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The database file inside Benchtop's data directory.
pub const DB_FILE: &str = "benchtop.db";
/// The name of the run that collects the inference API's calls.
pub const TRAFFIC_RUN: &str = "API traffic";

pub struct Store {
    path: PathBuf,
    writer: Writer,
    readers: Mutex<Vec<Connection>>,
}

/// Pragmas every connection gets: WAL, foreign keys, a busy timeout for the rare lock wait.
fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.pragma_update(None, "journal_mode", "wal")?;
    conn.pragma_update(None, "synchronous", "normal")?;
    conn.pragma_update(None, "foreign_keys", "on")?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Hex sha256 of `text` (inputs are deduplicated and split by it).
pub fn text_hash(text: &str) -> String {
    crate::util::hex(&Sha256::digest(text.as_bytes()))
}

/// JSON with object keys sorted at every level, so equal content hashes equally.
pub fn canonical_json(value: &Value) -> String {
    fn sorted(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                Value::Object(keys.into_iter().map(|k| (k.clone(), sorted(&map[k]))).collect())
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(value).to_string()
}

fn case_hash(case: &NewCase) -> String {
    let mut tags = case.tags.clone();
    tags.sort();
    text_hash(&canonical_json(&serde_json::json!({ "vars": case.vars, "expected": case.expected, "tags": tags })))
}

impl Store {
    /// Open (creating if needed) the log at `path`, upgrading its schema if it is older.
    pub fn open(path: &Path) -> Result<Store> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| StoreError::Open {
                path: path.to_path_buf(),
                cause: rusqlite::Error::ToSqlConversionFailure(Box::new(e)),
            })?;
        }
        let open_err = |source| StoreError::Open { path: path.to_path_buf(), cause: source };
        let mut conn = Connection::open(path).map_err(open_err)?;
        // Refuse a newer or foreign database before changing anything about it (even WAL mode).
        let version: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(open_err)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::TooNew { path: path.to_path_buf(), found: version, supported: SCHEMA_VERSION });
        }
        configure(&conn).map_err(open_err)?;
        migrate::migrate(&mut conn, path)?;
        let writer = Writer::spawn(conn).map_err(|e| StoreError::Open {
            path: path.to_path_buf(),
            cause: rusqlite::Error::ToSqlConversionFailure(Box::new(e)),
        })?;
        Ok(Store { path: path.to_path_buf(), writer, readers: Mutex::new(Vec::new()) })
    }

    /// Open the log in a data directory (`<data_dir>/benchtop.db`).
    pub fn open_in(data_dir: &Path) -> Result<Store> {
        Store::open(&data_dir.join(DB_FILE))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Run `f` on a read connection (pooled; never blocked by the writer).
    pub fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let pooled = self.readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => {
                let flags =
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
                let conn = Connection::open_with_flags(&self.path, flags)?;
                conn.busy_timeout(std::time::Duration::from_secs(10))?;
                conn
            }
        };
        let out = f(&conn);
        self.readers.lock().unwrap_or_else(|p| p.into_inner()).push(conn);
        out
    }

    /// Run `f` in the writer's transaction and wait for it to commit.
    pub fn write<T: Send + 'static>(&self, f: impl FnOnce(&Connection) -> Result<T> + Send + 'static) -> Result<T> {
        self.writer.write(f)
    }

    /// Queue `f` for the writer's transaction without waiting; `done` gets its value once it has
    /// committed. Fails at once with [`StoreError::Busy`] when the writer is too far behind.
    pub fn submit<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
        done: impl FnOnce(Result<T>) + Send + 'static,
    ) -> Result<()> {
        self.writer.submit(f, done)
    }

    // ---- targets, templates, runs ------------------------------------------------------------

    /// The id of the target with this fingerprint, recording it first if it is new.
    pub fn upsert_target(&self, target: NewTarget) -> Result<Id> {
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO targets (kind, name, fingerprint, config, created_at) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (fingerprint) DO UPDATE SET name = excluded.name",
                params![enum_str(&target.kind)?, target.name, target.fingerprint, target.config.to_string(), now_ms()],
            )?;
            Ok(conn.query_row("SELECT id FROM targets WHERE fingerprint = ?1", [&target.fingerprint], |r| r.get(0))?)
        })
    }

    pub fn create_run(&self, run: NewRun) -> Result<Id> {
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO runs (kind, name, test_set_id, config, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![enum_str(&run.kind)?, run.name, run.test_set_id, run.config.to_string(), now_ms()],
            )?;
            Ok(conn.last_insert_rowid())
        })
    }

    pub fn finish_run(&self, run_id: Id, status: RunStatus) -> Result<()> {
        self.write(move |conn| {
            let n = conn.execute(
                "UPDATE runs SET status = ?2, finished_at = ?3 WHERE id = ?1",
                params![run_id, enum_str(&status)?, now_ms()],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound { what: "run", id: run_id });
            }
            Ok(())
        })
    }

    /// The live-traffic run that collects the inference API's calls (created on first use).
    pub fn traffic_run(&self) -> Result<Id> {
        self.write(|conn| {
            let existing: Option<Id> = conn
                .query_row("SELECT id FROM runs WHERE kind = 'traffic' ORDER BY id LIMIT 1", [], |r| r.get(0))
                .optional()?;
            if let Some(id) = existing {
                return Ok(id);
            }
            conn.execute(
                "INSERT INTO runs (kind, name, status, created_at) VALUES ('traffic', ?1, 'running', ?2)",
                params![TRAFFIC_RUN, now_ms()],
            )?;
            Ok(conn.last_insert_rowid())
        })
    }

    // ---- results -----------------------------------------------------------------------------

    /// Record a result and wait for its commit.
    pub fn record_result(&self, result: NewResult) -> Result<Id> {
        self.write(move |conn| insert_result(conn, &result))
    }

    /// Queue a result without waiting; `done` gets its id once committed. Fails at once with
    /// [`StoreError::Busy`] if the writer is too far behind.
    pub fn submit_result(&self, result: NewResult, done: impl FnOnce(Result<Id>) + Send + 'static) -> Result<()> {
        self.submit(move |conn| insert_result(conn, &result), done)
    }

    /// The (case, target) cells of a run that already hold a result (answer or error).
    pub fn done_cells(&self, run_id: Id) -> Result<std::collections::HashSet<(Id, Id)>> {
        self.read(|conn| {
            let mut stmt =
                conn.prepare("SELECT case_id, target_id FROM results WHERE run_id = ?1 AND case_id IS NOT NULL")?;
            let cells = stmt.query_map([run_id], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?;
            Ok(cells)
        })
    }

    /// Every result of a run, oldest first.
    pub fn run_results(&self, run_id: Id) -> Result<Vec<StoredResult>> {
        self.run_results_range(run_id, 0, None)
    }

    /// A run's results, oldest first: `limit` of them (all if `None`) after skipping `offset`.
    pub fn run_results_range(&self, run_id: Id, offset: usize, limit: Option<usize>) -> Result<Vec<StoredResult>> {
        let limit = limit.map_or(-1, |l| l.min(i64::MAX as usize) as i64);
        self.read(|conn| {
            let mut stmt = conn.prepare(
                "SELECT id, case_id, target_id, input, output, label, scores, error, latency_ms, ttft_ms,
                        tokens_in, tokens_out, cost_usd, meta
                 FROM results WHERE run_id = ?1 ORDER BY id LIMIT ?2 OFFSET ?3",
            )?;
            let rows = stmt.query_map(params![run_id, limit, offset as i64], |r| {
                let scores: Option<String> = r.get(6)?;
                let meta: String = r.get(13)?;
                Ok(StoredResult {
                    id: r.get(0)?,
                    case_id: r.get(1)?,
                    target_id: r.get(2)?,
                    input: r.get(3)?,
                    answer: Answer {
                        output: r.get(4)?,
                        label: r.get(5)?,
                        scores: scores.and_then(|s| serde_json::from_str(&s).ok()),
                        error: r.get(7)?,
                        latency_ms: r.get(8)?,
                        ttft_ms: r.get(9)?,
                        tokens_in: r.get(10)?,
                        tokens_out: r.get(11)?,
                        cost_usd: r.get(12)?,
                    },
                    meta: serde_json::from_str(&meta).unwrap_or(Value::Null),
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// The newest answer recorded under `cache_key` without an error, if any.
    pub fn cached_answer(&self, cache_key: &str) -> Result<Option<Answer>> {
        self.read(|conn| {
            Ok(conn
                .query_row(
                    "SELECT output, label, scores, latency_ms, ttft_ms, tokens_in, tokens_out, cost_usd
                     FROM results WHERE cache_key = ?1 AND error IS NULL ORDER BY id DESC LIMIT 1",
                    [cache_key],
                    |r| {
                        let scores: Option<String> = r.get(2)?;
                        Ok(Answer {
                            output: r.get(0)?,
                            label: r.get(1)?,
                            scores: scores.and_then(|s| serde_json::from_str(&s).ok()),
                            error: None,
                            latency_ms: r.get(3)?,
                            ttft_ms: r.get(4)?,
                            tokens_in: r.get(5)?,
                            tokens_out: r.get(6)?,
                            cost_usd: r.get(7)?,
                        })
                    },
                )
                .optional()?)
        })
    }

    /// A run's name, test set, status and config.
    pub fn run_info(&self, run_id: Id) -> Result<RunInfo> {
        self.read(|conn| {
            conn.query_row("SELECT name, kind, test_set_id, status, config FROM runs WHERE id = ?1", [run_id], |r| {
                let config: String = r.get(4)?;
                Ok(RunInfo {
                    id: run_id,
                    name: r.get(0)?,
                    kind: r.get(1)?,
                    test_set_id: r.get(2)?,
                    status: r.get(3)?,
                    config: serde_json::from_str(&config).unwrap_or(Value::Null),
                })
            })
            .optional()?
            .ok_or(StoreError::NotFound { what: "run", id: run_id })
        })
    }

    /// Every run, newest first, with how many results each holds.
    pub fn runs(&self) -> Result<Vec<RunSummary>> {
        self.read(|conn| {
            let mut stmt = conn.prepare(
                "SELECT r.id, r.name, r.kind, r.test_set_id, r.status, r.created_at, r.finished_at,
                        (SELECT count(*) FROM results WHERE run_id = r.id)
                 FROM runs r ORDER BY r.id DESC",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(RunSummary {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    kind: r.get(2)?,
                    test_set_id: r.get(3)?,
                    status: r.get(4)?,
                    created_at: r.get(5)?,
                    finished_at: r.get(6)?,
                    results: r.get(7)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// How many results a run holds.
    pub fn count_results(&self, run_id: Id) -> Result<usize> {
        self.read(|conn| {
            let n: i64 = conn.query_row("SELECT count(*) FROM results WHERE run_id = ?1", [run_id], |r| r.get(0))?;
            Ok(n as usize)
        })
    }

    /// The targets a run has results for, by id.
    pub fn run_targets(&self, run_id: Id) -> Result<Vec<TargetRow>> {
        self.read(|conn| {
            let mut stmt = conn.prepare(
                "SELECT t.id, t.kind, t.name FROM targets t
                 WHERE t.id IN (SELECT DISTINCT target_id FROM results WHERE run_id = ?1) ORDER BY t.id",
            )?;
            let rows =
                stmt.query_map([run_id], |r| Ok(TargetRow { id: r.get(0)?, kind: r.get(1)?, name: r.get(2)? }))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// Results waiting for a person, newest first: those without human feedback
    /// ([`ReviewQueue::Unrated`]), or those where a local and a remote target gave the same case
    /// different labels and nobody has judged either yet ([`ReviewQueue::Disagreements`]; each
    /// item names the other result).
    pub fn review_queue(&self, queue: ReviewQueue, limit: usize) -> Result<Vec<ReviewItem>> {
        const HUMAN: &str =
            "NOT EXISTS (SELECT 1 FROM feedback_current f WHERE f.result_id = r.id AND f.source = 'human')";
        let sql = match queue {
            ReviewQueue::Unrated => format!(
                "SELECT r.id, r.run_id, t.name, t.kind, r.input, r.output, r.label, r.error, c.expected, NULL, NULL, NULL
                 FROM results r JOIN targets t ON t.id = r.target_id LEFT JOIN cases c ON c.id = r.case_id
                 WHERE r.error IS NULL AND {HUMAN}
                 ORDER BY r.id DESC LIMIT ?1"
            ),
            ReviewQueue::Disagreements => format!(
                "SELECT r.id, r.run_id, t.name, t.kind, r.input, r.output, r.label, r.error, c.expected,
                        o.id, ot.name, coalesce(o.label, o.output)
                 FROM results r JOIN targets t ON t.id = r.target_id LEFT JOIN cases c ON c.id = r.case_id
                 JOIN results o ON o.run_id = r.run_id AND o.case_id = r.case_id AND o.id <> r.id
                 JOIN targets ot ON ot.id = o.target_id
                 WHERE t.kind = 'local' AND ot.kind = 'remote' AND r.label IS NOT NULL
                   AND o.error IS NULL AND lower(trim(coalesce(o.label, o.output, ''))) <> lower(r.label)
                   AND {HUMAN}
                 ORDER BY r.id DESC LIMIT ?1"
            ),
        };
        self.read(|conn| {
            let mut stmt = conn.prepare(&sql)?;
            let rows = stmt.query_map([limit as i64], |r| {
                Ok(ReviewItem {
                    result_id: r.get(0)?,
                    run_id: r.get(1)?,
                    target: r.get(2)?,
                    target_kind: r.get(3)?,
                    input: r.get(4)?,
                    output: r.get(5)?,
                    label: r.get(6)?,
                    error: r.get(7)?,
                    expected: r.get(8)?,
                    other_result_id: r.get(9)?,
                    other_target: r.get(10)?,
                    other_output: r.get(11)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// The results logged for one inference API call, in input order (empty if none, or not yet
    /// committed: [`Store::flush`] first to see everything queued).
    pub fn call_results(&self, call_id: &str) -> Result<Vec<Id>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached("SELECT id FROM results WHERE call_id = ?1 ORDER BY id")?;
            let ids = stmt.query_map([call_id], |r| r.get(0))?;
            Ok(ids.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// Wait until every write queued before this call has committed.
    pub fn flush(&self) -> Result<()> {
        self.write(|_| Ok(()))
    }

    /// The providers the user set up, by name.
    pub fn saved_providers(&self) -> Result<Vec<SavedProvider>> {
        self.read(|conn| {
            let mut stmt = conn.prepare("SELECT config, models FROM providers ORDER BY name")?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
            rows.map(|row| {
                let (config, models) = row?;
                Ok(SavedProvider { config: serde_json::from_str(&config)?, models: serde_json::from_str(&models)? })
            })
            .collect()
        })
    }

    /// Add a provider, or replace the one with its name.
    pub fn save_provider(&self, provider: SavedProvider) -> Result<()> {
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO providers (name, config, models, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (name) DO UPDATE SET config = excluded.config, models = excluded.models, updated_at = excluded.updated_at",
                params![
                    provider.config.name,
                    serde_json::to_string(&provider.config)?,
                    serde_json::to_string(&provider.models)?,
                    now_ms()
                ],
            )?;
            Ok(())
        })
    }

    /// Remove a provider; `false` if there was none by that name.
    pub fn delete_provider(&self, name: &str) -> Result<bool> {
        let name = name.to_string();
        self.write(move |conn| Ok(conn.execute("DELETE FROM providers WHERE name = ?1", [name])? > 0))
    }

    /// Mark a run as running again (resuming it).
    pub fn reopen_run(&self, run_id: Id) -> Result<()> {
        self.write(move |conn| {
            conn.execute("UPDATE runs SET status = 'running', finished_at = NULL WHERE id = ?1", [run_id])?;
            Ok(())
        })
    }

    // ---- feedback ----------------------------------------------------------------------------

    /// Append a feedback event (checked: the results exist, ratings are 1–5, an undo names an
    /// event of the same result that is not itself an undo).
    pub fn add_feedback(&self, event: NewFeedback) -> Result<Id> {
        self.write(move |conn| insert_feedback(conn, &event))
    }

    /// Every event on a result (as A or as B of a preference), oldest first.
    pub fn feedback_history(&self, result_id: Id) -> Result<Vec<FeedbackEvent>> {
        self.read(|conn| {
            feedback_events(
                conn,
                "SELECT id, result_id, value, source, annotator, created_at FROM feedback
                 WHERE result_id = ?1 OR other_result_id = ?1 ORDER BY id",
                result_id,
            )
        })
    }

    /// The feedback in force on a result: latest per kind (per tag, per preference pair), undone
    /// events left out.
    pub fn current_feedback(&self, result_id: Id) -> Result<Vec<FeedbackEvent>> {
        self.read(|conn| {
            feedback_events(
                conn,
                "SELECT id, result_id, value, source, annotator, created_at FROM feedback_current
                 WHERE result_id = ?1 OR other_result_id = ?1 ORDER BY id",
                result_id,
            )
        })
    }

    // ---- test sets ---------------------------------------------------------------------------

    pub fn create_test_set(&self, name: &str, description: Option<&str>) -> Result<Id> {
        let (name, description) = (name.trim().to_string(), description.map(str::to_string));
        if name.is_empty() {
            return Err(StoreError::Invalid { what: "test set name", reason: "it is empty".into() });
        }
        self.write(move |conn| {
            let now = now_ms();
            conn.execute(
                "INSERT INTO test_sets (name, description, created_at, updated_at) VALUES (?1, ?2, ?3, ?3)",
                params![name, description, now],
            )
            .map_err(|e| match e {
                rusqlite::Error::SqliteFailure(f, _) if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE => {
                    StoreError::Invalid {
                        what: "test set name",
                        reason: format!("a test set named `{name}` exists already"),
                    }
                }
                other => other.into(),
            })?;
            Ok(conn.last_insert_rowid())
        })
    }

    pub fn test_sets(&self) -> Result<Vec<TestSet>> {
        self.read(|conn| {
            let mut stmt = conn.prepare(
                "SELECT s.id, s.name, s.description, (SELECT count(*) FROM cases c WHERE c.test_set_id = s.id)
                 FROM test_sets s ORDER BY s.name",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(TestSet { id: r.get(0)?, name: r.get(1)?, description: r.get(2)?, cases: r.get(3)? })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    pub fn test_set_by_name(&self, name: &str) -> Result<Option<TestSet>> {
        Ok(self.test_sets()?.into_iter().find(|s| s.name == name))
    }

    pub fn delete_test_set(&self, id: Id) -> Result<()> {
        self.write(move |conn| match conn.execute("DELETE FROM test_sets WHERE id = ?1", [id])? {
            0 => Err(StoreError::NotFound { what: "test set", id }),
            _ => Ok(()),
        })
    }

    /// Append cases in order; a case whose content (vars, expected, tags) is already in the set
    /// is skipped, so importing the same file twice adds nothing.
    pub fn add_cases(&self, test_set_id: Id, cases: Vec<NewCase>) -> Result<AddCasesReport> {
        self.write(move |conn| {
            let exists: bool =
                conn.query_row("SELECT EXISTS (SELECT 1 FROM test_sets WHERE id = ?1)", [test_set_id], |r| r.get(0))?;
            if !exists {
                return Err(StoreError::NotFound { what: "test set", id: test_set_id });
            }
            let mut position: i64 = conn.query_row(
                "SELECT coalesce(max(position), -1) + 1 FROM cases WHERE test_set_id = ?1",
                [test_set_id],
                |r| r.get(0),
            )?;
            let mut insert = conn.prepare_cached(
                "INSERT INTO cases (test_set_id, position, vars, expected, tags, content_hash, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (test_set_id, content_hash) DO NOTHING",
            )?;
            let mut report = AddCasesReport::default();
            let now = now_ms();
            for case in &cases {
                let inserted = insert.execute(params![
                    test_set_id,
                    position,
                    Value::Object(case.vars.clone()).to_string(),
                    case.expected,
                    serde_json::to_string(&case.tags)?,
                    case_hash(case),
                    now
                ])?;
                if inserted == 1 {
                    report.inserted += 1;
                    position += 1;
                } else {
                    report.duplicates += 1;
                }
            }
            conn.execute("UPDATE test_sets SET updated_at = ?2 WHERE id = ?1", params![test_set_id, now])?;
            Ok(report)
        })
    }

    pub fn update_case(&self, case_id: Id, case: NewCase) -> Result<()> {
        self.write(move |conn| {
            let n = conn.execute(
                "UPDATE cases SET vars = ?2, expected = ?3, tags = ?4, content_hash = ?5 WHERE id = ?1",
                params![
                    case_id,
                    Value::Object(case.vars.clone()).to_string(),
                    case.expected,
                    serde_json::to_string(&case.tags)?,
                    case_hash(&case)
                ],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound { what: "case", id: case_id });
            }
            Ok(())
        })
    }

    pub fn delete_case(&self, case_id: Id) -> Result<()> {
        self.write(move |conn| match conn.execute("DELETE FROM cases WHERE id = ?1", [case_id])? {
            0 => Err(StoreError::NotFound { what: "case", id: case_id }),
            _ => Ok(()),
        })
    }

    pub fn cases(&self, test_set_id: Id) -> Result<Vec<Case>> {
        self.read(|conn| {
            let mut stmt = conn.prepare(
                "SELECT id, test_set_id, position, vars, expected, tags, content_hash FROM cases
                 WHERE test_set_id = ?1 ORDER BY position",
            )?;
            let mut rows = stmt.query([test_set_id])?;
            let mut cases = Vec::new();
            while let Some(r) = rows.next()? {
                let vars: String = r.get(3)?;
                let tags: String = r.get(5)?;
                cases.push(Case {
                    id: r.get(0)?,
                    test_set_id: r.get(1)?,
                    position: r.get(2)?,
                    vars: serde_json::from_str::<Map<String, Value>>(&vars)?,
                    expected: r.get(4)?,
                    tags: serde_json::from_str(&tags)?,
                    content_hash: r.get(6)?,
                });
            }
            Ok(cases)
        })
    }

    // ---- search ------------------------------------------------------------------------------

    /// Full-text search over results' inputs and outputs (FTS5 syntax; plain words match words),
    /// best matches first.
    pub fn search(&self, query: &str, limit: usize) -> Result<Vec<SearchHit>> {
        let query = fts_query(query);
        self.read(|conn| {
            let mut stmt = conn.prepare(
                "SELECT r.id, r.run_id, t.name, r.input, r.output, r.label, r.created_at
                 FROM results_fts f JOIN results r ON r.id = f.rowid JOIN targets t ON t.id = r.target_id
                 WHERE results_fts MATCH ?1 ORDER BY rank LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![query, limit as i64], |r| {
                Ok(SearchHit {
                    result_id: r.get(0)?,
                    run_id: r.get(1)?,
                    target: r.get(2)?,
                    input: r.get(3)?,
                    output: r.get(4)?,
                    label: r.get(5)?,
                    created_at: r.get(6)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }
}

/// A target as the log knows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TargetRow {
    pub id: Id,
    /// `local` or `remote`.
    pub kind: String,
    pub name: String,
}

/// Which results [`Store::review_queue`] gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewQueue {
    Unrated,
    Disagreements,
}

/// One result waiting for review.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ReviewItem {
    pub result_id: Id,
    pub run_id: Id,
    pub target: String,
    pub target_kind: String,
    pub input: String,
    pub output: Option<String>,
    pub label: Option<String>,
    pub error: Option<String>,
    /// The case's expected answer, if it has one.
    pub expected: Option<String>,
    /// Disagreements: the remote result that disagrees.
    pub other_result_id: Option<Id>,
    pub other_target: Option<String>,
    pub other_output: Option<String>,
}

/// A recorded result, as [`Store::run_results`] gives it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StoredResult {
    pub id: Id,
    pub case_id: Option<Id>,
    pub target_id: Id,
    pub input: String,
    pub answer: Answer,
    pub meta: Value,
}

/// A stored run, as [`Store::run_info`] gives it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RunInfo {
    pub id: Id,
    pub name: String,
    pub kind: String,
    pub test_set_id: Option<Id>,
    pub status: String,
    pub config: Value,
}

/// A provider the user set up: how to reach it, and the model ids to offer for it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SavedProvider {
    pub config: crate::providers::ProviderConfig,
    pub models: Vec<String>,
}

/// A run in the list [`Store::runs`] gives.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RunSummary {
    pub id: Id,
    pub name: String,
    pub kind: String,
    pub test_set_id: Option<Id>,
    pub status: String,
    pub created_at: i64,
    pub finished_at: Option<i64>,
    pub results: i64,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SearchHit {
    pub result_id: Id,
    pub run_id: Id,
    pub target: String,
    pub input: String,
    pub output: Option<String>,
    pub label: Option<String>,
    pub created_at: i64,
}

/// A query for all of the text's words, each quoted, so `"` `*` `:` `-` and FTS5 keywords (`OR`,
/// `NEAR`…) in what a user types are matched literally instead of failing as syntax.
fn fts_query(query: &str) -> String {
    query.split_whitespace().map(|word| format!("\"{}\"", word.replace('"', "\"\""))).collect::<Vec<_>>().join(" ")
}

fn enum_str<T: serde::Serialize>(value: &T) -> Result<String> {
    match serde_json::to_value(value)? {
        Value::String(s) => Ok(s),
        other => Err(StoreError::Invalid { what: "enum", reason: other.to_string() }),
    }
}

fn insert_result(conn: &Connection, r: &NewResult) -> Result<Id> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO results (run_id, case_id, target_id, input, input_hash, output, label, scores, error,
             latency_ms, ttft_ms, tokens_in, tokens_out, cost_usd, cache_key, meta, created_at, call_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
    )?;
    stmt.execute(params![
        r.run_id,
        r.case_id,
        r.target_id,
        r.input,
        text_hash(&r.input),
        r.answer.output,
        r.answer.label,
        r.answer.scores.as_ref().map(Value::to_string),
        r.answer.error,
        r.answer.latency_ms,
        r.answer.ttft_ms,
        r.answer.tokens_in,
        r.answer.tokens_out,
        r.answer.cost_usd,
        r.cache_key,
        r.meta.as_ref().map(Value::to_string).unwrap_or_else(|| "{}".into()),
        now_ms(),
        r.call_id
    ])
    .map_err(|e| foreign_key_error(e, "result"))?;
    Ok(conn.last_insert_rowid())
}

fn foreign_key_error(e: rusqlite::Error, what: &'static str) -> StoreError {
    match e {
        rusqlite::Error::SqliteFailure(f, _) if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY => {
            StoreError::Invalid {
                what,
                reason: "it refers to a run, case, target or result that does not exist".into(),
            }
        }
        other => other.into(),
    }
}

fn insert_feedback(conn: &Connection, event: &NewFeedback) -> Result<Id> {
    let invalid = |reason: &str| StoreError::Invalid { what: "feedback", reason: reason.to_string() };
    let result_exists = |id: Id| -> Result<bool> {
        Ok(conn.query_row("SELECT EXISTS (SELECT 1 FROM results WHERE id = ?1)", [id], |r| r.get(0))?)
    };
    if !result_exists(event.result_id)? {
        return Err(StoreError::NotFound { what: "result", id: event.result_id });
    }
    let (mut other, mut blind, mut shown_left, mut undoes) = (None, None, None, None);
    match &event.feedback {
        Feedback::Rating { stars } if !(1..=5).contains(stars) => return Err(invalid("a rating is 1 to 5 stars")),
        Feedback::Preference { other: b, blind: is_blind, shown_left: left, .. } => {
            if *b == event.result_id {
                return Err(invalid("a preference compares two different results"));
            }
            if !result_exists(*b)? {
                return Err(StoreError::NotFound { what: "result", id: *b });
            }
            if *left != event.result_id && *left != *b {
                return Err(invalid("`shown_left` must be one of the two results"));
            }
            (other, blind, shown_left) = (Some(*b), Some(*is_blind), Some(*left));
        }
        Feedback::Correction { text: None, label: None } => {
            return Err(invalid("a correction needs a text or a label"))
        }
        Feedback::Tag { tag, .. } if tag.trim().is_empty() => return Err(invalid("a tag cannot be empty")),
        Feedback::Undo { feedback_id } => {
            let target: Option<(Id, String)> = conn
                .query_row("SELECT result_id, kind FROM feedback WHERE id = ?1", [feedback_id], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()?;
            match target {
                None => return Err(StoreError::NotFound { what: "feedback", id: *feedback_id }),
                Some((_, kind)) if kind == "undo" => {
                    return Err(invalid("an undo cannot itself be undone; add the feedback again"))
                }
                Some((result, _)) if result != event.result_id => {
                    return Err(invalid("that feedback belongs to another result"))
                }
                Some(_) => undoes = Some(*feedback_id),
            }
        }
        _ => {}
    }
    conn.prepare_cached(
        "INSERT INTO feedback (result_id, other_result_id, kind, value, source, annotator, blind, shown_left, undoes, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        event.result_id,
        other,
        event.feedback.kind(),
        serde_json::to_string(&event.feedback)?,
        event.source.as_str(),
        event.annotator,
        blind,
        shown_left,
        undoes,
        now_ms()
    ])?;
    Ok(conn.last_insert_rowid())
}

fn feedback_events(conn: &Connection, sql: &str, result_id: Id) -> Result<Vec<FeedbackEvent>> {
    let mut stmt = conn.prepare(sql)?;
    let mut rows = stmt.query([result_id])?;
    let mut events = Vec::new();
    while let Some(r) = rows.next()? {
        let value: String = r.get(2)?;
        let source: String = r.get(3)?;
        events.push(FeedbackEvent {
            id: r.get(0)?,
            result_id: r.get(1)?,
            feedback: serde_json::from_str(&value)?,
            source: stored_source(&source)?,
            annotator: r.get(4)?,
            created_at: r.get(5)?,
        });
    }
    Ok(events)
}

/// A label source read back from the log.
pub(crate) fn stored_source(name: &str) -> Result<LabelSource> {
    LabelSource::from_name(name)
        .ok_or_else(|| StoreError::Invalid { what: "label source", reason: format!("unknown source `{name}`") })
}
