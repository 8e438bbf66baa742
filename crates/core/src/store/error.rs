use std::path::PathBuf;

/// What went wrong in the feedback log; messages say what to do next.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the feedback log at {} ({cause}).\nFix: check the path and its permissions, or choose another with --data-dir / BENCHTOP_DATA_DIR.", path.display())]
    Open { path: PathBuf, cause: rusqlite::Error },

    #[error("the feedback log at {} has schema version {found}, newer than this Benchtop understands ({supported}). It was left untouched.\nFix: use the newer Benchtop that wrote it, or point --data-dir elsewhere.", path.display())]
    TooNew { path: PathBuf, found: u32, supported: u32 },

    #[error("{} is an SQLite database but not a Benchtop feedback log; it was left untouched.\nFix: point --data-dir at another folder.", path.display())]
    Foreign { path: PathBuf },

    #[error("upgrading the feedback log at {} to schema version {version} failed ({cause}). The database is unchanged (each upgrade runs in one transaction); a copy from before the upgrade is at {}.", path.display(), backup.display())]
    Migration { path: PathBuf, version: u32, backup: PathBuf, cause: rusqlite::Error },

    #[error("{what} {id} does not exist")]
    NotFound { what: &'static str, id: i64 },

    #[error("invalid {what}: {reason}")]
    Invalid { what: &'static str, reason: String },

    #[error("the feedback log is busy: {0} writes are already queued; try again shortly")]
    Busy(usize),

    #[error("the feedback log's writer has stopped; restart Benchtop (nothing acknowledged was lost)")]
    WriterGone,

    #[error("database error")]
    Sqlite(#[from] rusqlite::Error),

    #[error("stored JSON is malformed")]
    Json(#[from] serde_json::Error),
}

/// The error a batch-mate's failure hands to everyone in the same transaction.
impl Clone for StoreError {
    fn clone(&self) -> Self {
        match self {
            StoreError::Busy(n) => StoreError::Busy(*n),
            StoreError::WriterGone => StoreError::WriterGone,
            StoreError::NotFound { what, id } => StoreError::NotFound { what, id: *id },
            StoreError::Invalid { what, reason } => StoreError::Invalid { what, reason: reason.clone() },
            other => StoreError::Invalid { what: "write", reason: other.to_string() },
        }
    }
}
