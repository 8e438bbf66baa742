//! Schema versions: numbered SQL files under `migrations/`, embedded in the binary, applied in
//! order, each in one immediate transaction that also bumps `PRAGMA user_version`.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, TransactionBehavior};

use super::StoreError;

const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/0001_init.sql"),
    include_str!("../../migrations/0002_traffic_policies.sql"),
    include_str!("../../migrations/0003_run_cells.sql"),
    include_str!("../../migrations/0004_call_ids.sql"),
    include_str!("../../migrations/0005_providers.sql"),
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Bring the database at `path` (open as `conn`) up to [`SCHEMA_VERSION`]. A database newer than
/// that, or an SQLite file that is not Benchtop's, is refused and left untouched. Before the first
/// upgrade of an existing log, a copy is written next to it (`<name>.v<N>.bak`).
pub fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    migrate_to(conn, path, SCHEMA_VERSION)
}

/// [`migrate`], stopping at `target` (tests build old-version databases with it).
pub fn migrate_to(conn: &mut Connection, path: &Path, target: u32) -> Result<(), StoreError> {
    let found: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::TooNew { path: path.to_path_buf(), found, supported: SCHEMA_VERSION });
    }
    if found == 0 {
        let objects: i64 = conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))?;
        if objects > 0 {
            return Err(StoreError::Foreign { path: path.to_path_buf() });
        }
    }
    if found >= target {
        return Ok(());
    }
    let backup = backup_path(path, found);
    if found > 0 {
        let mut copy = Connection::open(&backup)?;
        rusqlite::backup::Backup::new(conn, &mut copy)?.run_to_completion(256, std::time::Duration::ZERO, None)?;
        tracing::info!(backup = %backup.display(), from = found, to = target, "upgrading the feedback log");
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().take(target as usize).skip(found as usize) {
        let version = index as u32 + 1;
        let fail = |cause| StoreError::Migration { path: path.to_path_buf(), version, backup: backup.clone(), cause };
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(fail)?;
        tx.execute_batch(sql).map_err(fail)?;
        tx.pragma_update(None, "user_version", version).map_err(fail)?;
        tx.commit().map_err(fail)?;
    }
    Ok(())
}

fn backup_path(path: &Path, version: u32) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(format!(".v{version}.bak"));
    path.with_file_name(name)
}
