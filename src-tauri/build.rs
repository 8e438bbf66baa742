fn main() {
    // The app's own commands, declared so that capabilities/ must grant each one (a command not
    // granted is refused at run time): keep this list and `generate_handler!` in main.rs in step.
    let manifest = tauri_build::AppManifest::new().commands(&[
        "api",
        "api_stream",
        "api_cancel",
        "ui_ready",
        "server_status",
        "server_set",
    ]);
    tauri_build::try_build(tauri_build::Attributes::new().app_manifest(manifest)).expect("tauri build script");
}
