//! What every long-running process of this system does the same way: stop on a signal, and name
//! itself uniquely to apalis.

use tokio_util::sync::CancellationToken;
use tracing::info;

/// Cancels `token` on SIGTERM or SIGINT.
pub async fn cancel_on_signal(token: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                token.cancel();
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => info!("SIGINT received; finishing in-flight jobs"),
            _ = term.recv() => info!("SIGTERM received; finishing in-flight jobs"),
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    token.cancel();
}

/// A worker name no other process has now or had recently: apalis-redis refuses a name whose
/// heartbeat is still alive, so a restarted pod that reused its name would not start.
pub fn unique_worker_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    let random: u32 = rand::random();
    format!("worker-{host}-{}-{random:08x}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_differ_within_one_process() {
        let a = unique_worker_name();
        let b = unique_worker_name();
        assert_ne!(a, b);
        assert!(a.contains(&std::process::id().to_string()));
    }
}
