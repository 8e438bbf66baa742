use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] benchtop_core::store::StoreError),

    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },

    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },

    #[error("{0}")]
    Invalid(String),

    #[error("Parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),

    #[error("Arrow: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),

    #[error("CSV: {0}")]
    Csv(#[from] csv::Error),

    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),

    #[error("YAML: {0}")]
    Yaml(#[from] serde_norway::Error),
}

impl ExportError {
    pub(crate) fn write(path: &std::path::Path, source: std::io::Error) -> ExportError {
        ExportError::Write { path: path.to_path_buf(), source }
    }
}
