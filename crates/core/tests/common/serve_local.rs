// Included (`include!`) by the test servers in this folder, which the CLI tests load by path too.

/// Serve `app` on a free port of 127.0.0.1, from its own thread and runtime, until the returned
/// sender is dropped. Returns the base URL. Connections use TCP_NODELAY, as real servers do: small
/// writes (SSE events) go out at once instead of waiting ~40 ms on Nagle and delayed ACKs.
fn serve_local(app: axum::Router) -> (String, tokio::sync::oneshot::Sender<()>) {
    use axum::serve::ListenerExt;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    listener.set_nonblocking(true).expect("nonblocking");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener").tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
        });
    });
    (url, stop)
}
