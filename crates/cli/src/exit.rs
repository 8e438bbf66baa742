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
//! | 7 | the feedback log cannot be used (newer version, not Benchtop's, cannot be opened) |
//! | 8 | a download failed (hub unreachable, not authorised, server error, corrupted or cut off) |
//! | 9 | `benchtop run`: an assertion failed or a cell errored |
//! | 130 | cancelled with Ctrl-C |

use std::process::ExitCode;

use benchtop_core::engine::{EngineError, ErrorKind};
use benchtop_core::models::hub::HubError;
use benchtop_core::models::ManageError;
use benchtop_core::store::StoreError;
use benchtop_export::ExportError;

use benchtop_core::providers::ProviderError;
use benchtop_core::runs::RunError;

use crate::commands::generate::Cancelled;
use crate::commands::run::RunFailed;

use crate::input::InputError;

pub fn code_for(err: &anyhow::Error) -> ExitCode {
    // Input errors arrive as errors or as context on one (`with_context(|| InputError::…)`).
    if err.downcast_ref::<InputError>().is_some() || err.chain().any(|e| e.is::<InputError>()) {
        return ExitCode::from(3);
    }
    let store_error = err.chain().find_map(|e| {
        e.downcast_ref::<StoreError>()
            .or_else(|| match e.downcast_ref::<ExportError>() {
                Some(ExportError::Store(inner)) => Some(inner),
                _ => None,
            })
            .or_else(|| match e.downcast_ref::<RunError>() {
                Some(RunError::Store(inner)) => Some(inner),
                _ => None,
            })
    });
    if let Some(store_error) = store_error {
        return match store_error {
            StoreError::Invalid { .. } | StoreError::NotFound { .. } => ExitCode::from(3),
            StoreError::Open { .. }
            | StoreError::TooNew { .. }
            | StoreError::Foreign { .. }
            | StoreError::Migration { .. } => ExitCode::from(7),
            _ => ExitCode::from(1),
        };
    }
    if err.chain().any(|e| matches!(e.downcast_ref::<ExportError>(), Some(ExportError::Invalid(_)))) {
        return ExitCode::from(3);
    }
    if err.chain().any(|e| e.is::<Cancelled>()) {
        return ExitCode::from(130);
    }
    if err.chain().any(|e| e.is::<RunFailed>()) {
        return ExitCode::from(9);
    }
    // Run files that cannot be used, providers without keys or with bad settings: bad input.
    if err.chain().any(|e| {
        matches!(e.downcast_ref::<RunError>(), Some(RunError::Spec(_)))
            || matches!(
                e.downcast_ref::<ProviderError>(),
                Some(ProviderError::NoKey { .. } | ProviderError::Config { .. })
            )
    }) {
        return ExitCode::from(3);
    }
    if let Some(RunError::Engine(e)) = err.chain().find_map(|e| e.downcast_ref::<RunError>()) {
        return engine_code(e.kind());
    }
    let manage = err.chain().find_map(|e| {
        e.downcast_ref::<ManageError>().or_else(|| match e.downcast_ref::<HubError>() {
            Some(HubError::Name(inner)) => Some(inner),
            _ => None,
        })
    });
    match manage {
        Some(ManageError::BadName { .. } | ManageError::Exists { .. }) => return ExitCode::from(3),
        Some(ManageError::NotAdded { .. }) => return ExitCode::from(4),
        Some(ManageError::Io { .. }) => return ExitCode::from(1),
        // `ManageError::Engine` is transparent: the engine error is inside it, not in the chain.
        Some(ManageError::Engine(e)) => return engine_code(e.kind()),
        None => {}
    }
    if let Some(hub) = err.chain().find_map(|e| e.downcast_ref::<HubError>()) {
        return match hub {
            HubError::BadRepo(_) | HubError::BadEndpoint(..) => ExitCode::from(3),
            HubError::NotFound { .. } | HubError::Unsuitable { .. } => ExitCode::from(4),
            HubError::Io { .. } => ExitCode::from(1),
            HubError::Name(_) => ExitCode::from(3),
            HubError::Unreachable { .. }
            | HubError::Unauthorized { .. }
            | HubError::Server { .. }
            | HubError::Corrupt { .. }
            | HubError::Interrupted { .. } => ExitCode::from(8),
        };
    }
    match err.chain().find_map(|e| e.downcast_ref::<EngineError>()) {
        Some(e) => engine_code(e.kind()),
        None => ExitCode::from(1),
    }
}

fn engine_code(kind: ErrorKind) -> ExitCode {
    match kind {
        ErrorKind::Input => ExitCode::from(3),
        ErrorKind::ModelNotFound | ErrorKind::InvalidModel => ExitCode::from(4),
        ErrorKind::Runtime => ExitCode::from(5),
        ErrorKind::Inference => ExitCode::from(6),
    }
}
