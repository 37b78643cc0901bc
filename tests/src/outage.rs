//! Outages to order: a throwaway redis-server on a spare port that can be paused, killed and
//! restarted, and a TCP proxy in front of Postgres that can be cut. Never the shared services.

use std::{
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use tokio::{net::TcpListener, task::AbortHandle};

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// A redis-server of our own, persisting every write (AOF, fsync always) so a restart loses
/// nothing, as a production Redis holding a queue should be configured.
pub struct ThrowawayRedis {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
    extra: Vec<String>,
}

impl ThrowawayRedis {
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// With more `redis-server` arguments (e.g. `--notify-keyspace-events K$g`), kept across
    /// restarts.
    pub async fn start_with(extra: &[&str]) -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("fbtr-redis-{port}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("redis dir");
        let extra = extra.iter().map(|s| (*s).to_owned()).collect();
        let mut r = Self { port, dir, child: None, extra };
        r.spawn().await;
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes"])
            .args(["--appendfsync", "always", "--dir"])
            .arg(&self.dir)
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (apt-get install redis-server)");
        self.child = Some(child);
        self.wait_ready().await;
    }

    async fn wait_ready(&self) {
        for _ in 0..200 {
            if let Ok(client) = redis::Client::open(self.url())
                && let Ok(mut c) = client.get_multiplexed_async_connection().await
                && redis::cmd("PING").query_async::<String>(&mut c).await.is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("throwaway redis on {} did not come up", self.port);
    }

    fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill").args([sig, &c.id().to_string()]).status();
        }
    }

    /// Freezes the server (connections hang, as with a network partition) for `d`.
    pub async fn freeze_for(&self, d: Duration) {
        self.signal("-STOP");
        tokio::time::sleep(d).await;
        self.signal("-CONT");
    }

    /// Kills it (no goodbye to clients) and starts it again on the same port and data.
    pub async fn restart(&mut self, down_for: Duration) {
        self.signal("-KILL");
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
        tokio::time::sleep(down_for).await;
        self.spawn().await;
    }
}

impl Drop for ThrowawayRedis {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Forwards 127.0.0.1:port to `target`; `cut` drops every connection and refuses new ones until
/// `restore`.
pub struct TcpProxy {
    pub addr: SocketAddr,
    cut: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<AbortHandle>>>,
    accept: AbortHandle,
}

impl TcpProxy {
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("addr");
        let cut = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let (c, list) = (cut.clone(), conns.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if c.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                if let Ok(mut l) = list.lock() {
                    l.retain(|h| !h.is_finished());
                    l.push(task.abort_handle());
                }
            }
        })
        .abort_handle();
        Self { addr, cut, conns, accept }
    }

    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        if let Ok(mut l) = self.conns.lock() {
            for h in l.drain(..) {
                h.abort();
            }
        }
    }

    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}
