//! The API's bearer token: 32 random bytes, generated on first start and kept in the data
//! directory (`api-token`, readable by the owner only). `benchtop token` prints it.

use std::io::Write;
use std::path::{Path, PathBuf};

pub const TOKEN_FILE: &str = "api-token";

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot read or write the API token at {} ({cause}).\nFix: check the data directory's permissions, or choose another with --data-dir.", path.display())]
    Io { path: PathBuf, cause: std::io::Error },
    #[error("the API token file {} is empty or malformed.\nFix: delete it; a new token is made on the next start.", path.display())]
    Malformed { path: PathBuf },
    #[error("the system's random source failed: {0}")]
    Random(String),
}

/// The token kept in `data_dir`, creating it (and the directory) on first use.
pub fn load_or_create(data_dir: &Path) -> Result<String, TokenError> {
    let path = data_dir.join(TOKEN_FILE);
    let io = |cause| TokenError::Io { path: path.clone(), cause };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let token = text.trim();
            if token.len() < 32 || !token.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(TokenError::Malformed { path });
            }
            return Ok(token.to_string());
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    std::fs::create_dir_all(data_dir).map_err(io)?;
    let token = format!("bt_{}", random_hex(32)?);
    // Written under a temporary name with owner-only permissions, then renamed: a reader never
    // sees half a token, and two first starts racing agree on one.
    let tmp = data_dir.join(format!(".{TOKEN_FILE}.{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&tmp).map_err(io)?;
    file.write_all(format!("{token}\n").as_bytes()).and_then(|_| file.sync_all()).map_err(io)?;
    drop(file);
    match std::fs::hard_link(&tmp, &path) {
        Ok(()) => {
            let _ = std::fs::remove_file(&tmp);
            Ok(token)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let _ = std::fs::remove_file(&tmp);
            load_or_create(data_dir)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(io(e))
        }
    }
}

/// `bytes` random bytes from the OS, as hex.
pub fn random_hex(bytes: usize) -> Result<String, TokenError> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| TokenError::Random(e.to_string()))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// Compare without leaking, through timing, how much of a guess was right.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
