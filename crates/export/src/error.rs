use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] benchtop_core::store::StoreError),

    #[error("cannot write {}", path.display())]
    Write { path: PathBuf, source: std::io::Error },

    #[error("cannot read {}", path.display())]
    Read { path: PathBuf, source: std::io::Error },

    #[error("{0}")]
    Invalid(String),

    #[error("not a readable Parquet file")]
    Parquet(#[from] parquet::errors::ParquetError),

    #[error("Arrow")]
    Arrow(#[from] arrow_schema::ArrowError),

    #[error("CSV")]
    Csv(#[from] csv::Error),

    #[error("JSON")]
    Json(#[from] serde_json::Error),

    #[error("YAML")]
    Yaml(#[from] serde_norway::Error),
}

impl ExportError {
    pub(crate) fn write(path: &std::path::Path, source: std::io::Error) -> ExportError {
        ExportError::Write { path: path.to_path_buf(), source }
    }
}
