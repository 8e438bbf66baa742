//! The models Benchtop can see: model folders inside a list of directories.

use std::path::{Path, PathBuf};

use super::{EngineError, ModelFolder, Result};

/// One folder found while listing: its name and either the parsed folder or why it is unusable.
#[derive(Debug)]
pub struct CatalogEntry {
    pub name: String,
    pub dir: PathBuf,
    pub folder: Result<ModelFolder>,
}

/// Model folders in `dirs`, searched in order: an earlier directory's model shadows a later one
/// of the same name (so a user's `minilm-l6-v2` wins over the default one).
#[derive(Debug, Clone)]
pub struct Catalog {
    dirs: Vec<PathBuf>,
}

impl Catalog {
    pub fn new(dirs: Vec<PathBuf>) -> Catalog {
        Catalog { dirs }
    }

    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// Every model folder (a subdirectory holding `model.onnx` or `config.json`), valid or not,
    /// by name; shadowed duplicates are left out.
    pub fn list(&self) -> Vec<CatalogEntry> {
        let mut entries: Vec<CatalogEntry> = Vec::new();
        for dir in &self.dirs {
            let Ok(children) = std::fs::read_dir(dir) else {
                continue;
            };
            let mut found: Vec<PathBuf> =
                children.flatten().map(|e| e.path()).filter(|p| looks_like_model(p)).collect();
            found.sort();
            for path in found {
                let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                if entries.iter().any(|e| e.name == name) {
                    continue;
                }
                entries.push(CatalogEntry { folder: ModelFolder::open(&path), name, dir: path });
            }
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        entries
    }

    /// The folder for `name_or_path`: a path to a model folder (anything with a path separator,
    /// or an existing directory), else a model name looked up in the catalog's directories.
    pub fn find(&self, name_or_path: &str) -> Result<ModelFolder> {
        let as_path = Path::new(name_or_path);
        if name_or_path.contains(std::path::MAIN_SEPARATOR) || name_or_path.contains('/') || as_path.is_dir() {
            return ModelFolder::open(as_path);
        }
        for dir in &self.dirs {
            let candidate = dir.join(name_or_path);
            if candidate.is_dir() {
                return ModelFolder::open(&candidate);
            }
        }
        Err(EngineError::ModelNotFound {
            name: name_or_path.to_string(),
            searched: self.dirs.clone(),
            available: self.list().into_iter().map(|e| e.name).collect(),
        })
    }
}

/// Hidden folders are skipped: they are half-built (`.add-…`, `.download-…`) or half-deleted.
fn looks_like_model(path: &Path) -> bool {
    !path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'))
        && path.is_dir()
        && (path.join(super::folder::MODEL_FILE).is_file() || path.join(super::folder::CONFIG_FILE).is_file())
}
