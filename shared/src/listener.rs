//! The TCP listener every HTTP server of the system (API, worker probes, Graph simulator) uses.

/// A listener whose connections send each response at once (`TCP_NODELAY`). Without it a reply
/// written in two segments waits for the peer's delayed ACK: 40 ms on Linux, which was most of a
/// report's time to a new token against the simulator, and is as much for any API caller.
pub fn nodelay(
    listener: tokio::net::TcpListener,
) -> impl axum::serve::Listener<Io = tokio::net::TcpStream, Addr = std::net::SocketAddr> {
    use axum::serve::ListenerExt as _;
    listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY on a connection");
        }
    })
}
