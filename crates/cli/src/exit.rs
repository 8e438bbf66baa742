//! Exit codes, mapped from errors in this one place. Documented in `benchtop --help` via the README.
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | success |
//! | 1 | any other failure (e.g. writing output failed) |
//! | 2 | wrong command-line usage |
//! | 3 | bad input: unreadable file, invalid UTF-8, no text, text too large, wrong task |
//! | 4 | model not found, or its folder is missing files / corrupt |
//! | 5 | ONNX Runtime missing, the wrong version, or failed to start |
//! | 6 | the model failed while running |

use std::process::ExitCode;

use benchtop_core::engine::{EngineError, ErrorKind};

use crate::input::InputError;

pub fn code_for(err: &anyhow::Error) -> ExitCode {
    if err.chain().any(|e| e.is::<InputError>()) {
        return ExitCode::from(3);
    }
    match err.chain().find_map(|e| e.downcast_ref::<EngineError>()).map(EngineError::kind) {
        Some(ErrorKind::Input) => ExitCode::from(3),
        Some(ErrorKind::ModelNotFound | ErrorKind::InvalidModel) => ExitCode::from(4),
        Some(ErrorKind::Runtime) => ExitCode::from(5),
        Some(ErrorKind::Inference) => ExitCode::from(6),
        None => ExitCode::from(1),
    }
}
