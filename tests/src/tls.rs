//! Throwaway TLS servers for the TLS tests: a private CA and a server certificate made with the
//! `openssl` CLI (already on every machine that runs Postgres and Redis, so no crate to add for
//! it), a Postgres cluster of our own with `ssl=on`, and a redis-server on a TLS-only port. Each is
//! killed and its files removed on drop, failed test or not. Never the shared services.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use crate::outage::free_port;

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

fn temp_dir(kind: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fbtr-{kind}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?} runs: {e}"));
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// A CA, and a certificate it signed for `localhost` and 127.0.0.1, as PEM files in `dir`.
pub struct TlsFiles {
    pub dir: PathBuf,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    pub fn generate(dir: &Path) -> Self {
        let p = |name: &str| dir.join(name);
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        run(Command::new("openssl")
            .args(["req", "-x509"])
            .args(ec)
            .arg("-keyout")
            .arg(p("ca.key"))
            .arg("-out")
            .arg(p("ca.pem"))
            .args(["-days", "2", "-subj", "/CN=fbtr test CA"])
            .args([
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ]));
        run(Command::new("openssl")
            .arg("req")
            .args(ec)
            .arg("-keyout")
            .arg(p("server.key"))
            .arg("-out")
            .arg(p("server.csr"))
            .args(["-subj", "/CN=localhost"]));
        std::fs::write(
            p("ext.cnf"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
             keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
        )
        .expect("ext file");
        run(Command::new("openssl")
            .args(["x509", "-req", "-in"])
            .arg(p("server.csr"))
            .arg("-CA")
            .arg(p("ca.pem"))
            .arg("-CAkey")
            .arg(p("ca.key"))
            .args(["-CAcreateserial", "-days", "2", "-out"])
            .arg(p("server.pem"))
            .arg("-extfile")
            .arg(p("ext.cnf")));
        Self { dir: dir.to_owned(), ca: p("ca.pem"), cert: p("server.pem"), key: p("server.key") }
    }
}

/// Stops a server: a polite signal first (Postgres then takes its backends down with it), then
/// SIGKILL if it is still there after 5 s.
fn stop(child: &mut Child, polite: &str) {
    let _ = Command::new("kill").args([polite, &child.id().to_string()]).status();
    for _ in 0..100 {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A Postgres 15 cluster of our own on a spare port, TLS on, trust auth for `postgres`.
pub struct TlsPostgres {
    pub port: u16,
    pub tls: TlsFiles,
    child: Option<Child>,
}

impl TlsPostgres {
    pub async fn start() -> Self {
        let dir = temp_dir("pg-tls");
        let tls = TlsFiles::generate(&dir);
        // initdb refuses root, and the server wants its key readable by itself alone.
        run(Command::new("chown").args(["-R", "postgres:postgres"]).arg(&dir));
        run(Command::new("chmod").arg("600").arg(&tls.key));
        let data = dir.join("data");
        run(as_postgres(&format!("{PG_BIN}/initdb"), &dir).arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "--no-sync",
            "--no-instructions",
        ]));
        let port = free_port();
        let log = std::fs::File::create(dir.join("postgres.log")).expect("log file");
        let child = as_postgres(&format!("{PG_BIN}/postgres"), &dir)
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-k"])
            .arg(&dir)
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "ssl=on", "-c", "fsync=off", "-c"])
            .arg(format!("ssl_cert_file={}", tls.cert.display()))
            .arg("-c")
            .arg(format!("ssl_key_file={}", tls.key.display()))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("postgres starts");
        let server = Self { port, tls, child: Some(child) };
        server.wait_ready().await;
        server
    }

    /// `postgres://postgres@127.0.0.1:PORT/DB?QUERY`.
    pub fn url(&self, db: &str, query: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}?{query}", self.port)
    }

    async fn wait_ready(&self) {
        use sqlx::Connection;
        let url = self.url("postgres", "sslmode=disable");
        for _ in 0..400 {
            if let Ok(c) = sqlx::PgConnection::connect(&url).await {
                let _ = c.close().await;
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let log = std::fs::read_to_string(self.tls.dir.join("postgres.log")).unwrap_or_default();
        panic!("throwaway postgres on {} did not come up:\n{log}", self.port);
    }
}

/// `program` as the postgres OS user. setpriv execs it in place (runuser would fork and stay in
/// between), so killing our child stops the server itself.
fn as_postgres(program: &str, cwd: &Path) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=postgres", "--regid=postgres", "--init-groups", program]).current_dir(cwd);
    cmd
}

impl Drop for TlsPostgres {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SIGINT: fast shutdown, which ends the backends too.
            stop(&mut c, "-INT");
        }
        let _ = std::fs::remove_dir_all(&self.tls.dir);
    }
}

/// A redis-server listening on a TLS port only (`--port 0`), clients not asked for certificates.
pub struct TlsRedis {
    pub port: u16,
    pub tls: TlsFiles,
    child: Option<Child>,
}

impl TlsRedis {
    pub async fn start() -> Self {
        let dir = temp_dir("redis-tls");
        let tls = TlsFiles::generate(&dir);
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--port", "0", "--tls-port", &port.to_string(), "--bind", "127.0.0.1"])
            .arg("--tls-cert-file")
            .arg(&tls.cert)
            .arg("--tls-key-file")
            .arg(&tls.key)
            .arg("--tls-ca-cert-file")
            .arg(&tls.ca)
            .args(["--tls-auth-clients", "no", "--save", "", "--appendonly", "no", "--dir"])
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (apt-get install redis-server)");
        let server = Self { port, tls, child: Some(child) };
        server.wait_listening().await;
        server
    }

    async fn wait_listening(&self) {
        for _ in 0..400 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("throwaway TLS redis on {} did not come up", self.port);
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            stop(&mut c, "-TERM");
        }
        let _ = std::fs::remove_dir_all(&self.tls.dir);
    }
}
