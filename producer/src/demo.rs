//! `producer demo`: the whole system in one process against the built-in Graph simulator, on the
//! local Redis and Postgres. It ships in the production binary, so it must never touch real data:
//! - Postgres: always the database `<name>_demo` (whatever `DATABASE_URL` names, `?dbname=`
//!   included), and only one that is empty or that an earlier demo marked as its own
//!   ([`seed::MARKER_TABLE`]); anything else is refused with exit code 2 before it is migrated.
//! - Redis: always the prefix `{REDIS_KEY_PREFIX}demo:`, and only keys under it are deleted.
//! - Webhooks: none are sent; `WEBHOOK_URLS` endpoints are real subscribers.

mod seed;

use std::{io::IsTerminal as _, net::SocketAddr, time::Duration};

use anyhow::Context as _;
use chrono::Utc;
use shared::{
    config::Config,
    job::Reason,
    queue::{self, Timings},
    secret::Secret,
    store::{self, cycles::Origin},
};
use simulator::{GraphSim, SimOptions};
use sqlx::{PgPool, postgres::PgConnectOptions};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

pub use seed::{MARKER_TABLE, Refused};

#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// End after one full cycle instead of running until Ctrl-C.
    #[arg(long)]
    pub exit_after_cycle: bool,
    /// How many demo channels to seed.
    #[arg(long, default_value_t = 1_000)]
    pub channels: u32,
    /// Simulated Graph API latency per request, in milliseconds.
    #[arg(long, default_value_t = 20)]
    pub latency_ms: u64,
    /// Where the dashboard and the API listen (default: `API_BIND`, or any free port when taken).
    #[arg(long)]
    pub bind: Option<SocketAddr>,
    /// Show the logs here instead of writing them to the log file.
    #[arg(short, long)]
    pub verbose: bool,
    /// Where the logs go without `-v` (default: fb-token-refresh-demo.log in the temp directory).
    #[arg(long)]
    pub log_file: Option<std::path::PathBuf>,
}

impl Default for DemoArgs {
    fn default() -> Self {
        Self { exit_after_cycle: false, channels: 1_000, latency_ms: 20, bind: None, verbose: false, log_file: None }
    }
}

/// Where a running demo can be reached, sent once it serves.
#[derive(Debug, Clone)]
pub struct Served {
    pub url: String,
    /// An admin `api_access_token` made for this run: it opens the dashboard and the API.
    pub login_token: Secret,
}

/// The command: prints the summary; returns the exit code (2 when the database is not the demo's).
pub async fn command(config: Config, args: DemoArgs) -> i32 {
    let log = if args.verbose {
        shared::telemetry::init_tracing(config.log_format);
        None
    } else {
        let path = args.log_file.clone().unwrap_or_else(|| std::env::temp_dir().join("fb-token-refresh-demo.log"));
        match std::fs::File::create(&path) {
            Ok(file) => {
                shared::telemetry::init_tracing_to_file(config.log_format, file);
                Some(path)
            }
            Err(e) => {
                shared::telemetry::init_tracing(config.log_format);
                eprintln!("demo: cannot write the log file {} ({e}); logging here", path.display());
                None
            }
        }
    };
    if let Some(path) = &log {
        println!("demo: logs go to {} (`demo -v` shows them here)", path.display());
    }
    let shutdown = CancellationToken::new();
    tokio::spawn(shared::process::cancel_on_signal(shutdown.clone()));
    let (ready, served) = oneshot::channel::<Served>();
    let announce = tokio::spawn(async move {
        if let Ok(s) = served.await {
            // Printed on purpose: the token is this run's own, and how its user gets in.
            println!("demo: dashboard at {} — log in with the token {}", s.url, s.login_token.expose());
        }
    });
    let exit_after_cycle = args.exit_after_cycle;
    let result = run_demo(config, args, shutdown, ready).await;
    announce.abort();
    match result {
        Ok(summary) => {
            // A demo stopped by Ctrl-C printed its table already (and again on every change).
            println!("{}", if exit_after_cycle { summary.as_str() } else { "demo: stopped" });
            0
        }
        Err(e) if e.downcast_ref::<Refused>().is_some() => {
            eprintln!("error: {e:#}");
            2
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    }
}

/// Runs the demo until `shutdown` (or, with `--exit-after-cycle`, until its cycle has settled) and
/// returns the last summary table. `ready` gets the dashboard's address once it serves.
pub async fn run_demo(
    mut config: Config,
    args: DemoArgs,
    shutdown: CancellationToken,
    ready: oneshot::Sender<Served>,
) -> anyhow::Result<String> {
    let sim = GraphSim::start(SimOptions { latency: Duration::from_millis(args.latency_ms), ..SimOptions::default() })
        .await
        .context("cannot start the Graph API simulator")?;
    config.database_url = demo_database(&config.database_url).map_err(Refused::new)?;
    config.redis_key_prefix = demo_prefix(&config.redis_key_prefix);
    config.webhook_urls.clear();
    config.fb_graph_url = sim.base_url();
    config.fb_app_id = Some(sim.options().app_id.clone());
    config.fb_app_secret = sim.options().app_secret.clone().map(Secret::new);
    config.worker_metrics_bind = "127.0.0.1:0".parse()?;
    // Whatever ADMIN_API_TOKEN says: the demo's world has its own key, shown to whoever started it.
    let login_token = fresh_login_token();
    config.admin_api_token = Some(login_token.clone());

    println!(
        "demo: Graph simulator at {}; database {}; Redis prefix {:?}",
        sim.base_url(),
        database_name(&config.database_url),
        config.redis_key_prefix
    );
    // Checked before migrating: a foreign database must not even get our tables.
    seed::refuse_foreign(&config.database_url, &config.database_schema).await?;
    let db = store::connect_and_migrate(&config.database_url, &config.database_schema, 8).await?;
    let mut redis = queue::connect(&config).await?;
    let plan = seed::seed(&db, &mut redis, &config, &sim, args.channels).await?;
    println!("demo: seeded {} channels: {}", args.channels, plan);

    let listener = listen(args.bind.unwrap_or(config.api_bind)).await?;
    let url = format!("http://{}/", listener.local_addr()?);
    let schedule = crate::cron::parse_schedule(&config.refresh_cron)?;
    let server = tokio::spawn(crate::serve::serve(config.clone(), schedule, listener, shutdown.clone()));
    let worker = tokio::spawn(shared::worker::run_with(config.clone(), Timings::default(), shutdown.clone()));
    let _ = ready.send(Served { url: url.clone(), login_token: login_token.clone() });

    let started = Utc::now();
    let clock = std::time::Instant::now();
    let row = crate::cycle::cycle_started(&db, Origin::Demo, None).await;
    let count = crate::cycle::enqueue_cycle(&db, redis.clone(), &config, Reason::Cron).await;
    crate::cycle::cycle_finished(&db, row, &count).await;
    count?;
    let mut progress =
        crate::progress::Progress::new(u64::from(args.channels), std::io::stderr().is_terminal(), "checked");
    crate::progress::wait_for_answers(&db, started, u64::from(args.channels), &shutdown, |done, all| {
        progress.update(done, all)
    })
    .await?;
    progress.finish();
    let mut summary = summarize(&db, &sim, clock.elapsed()).await?;
    if !args.exit_after_cycle && !shutdown.is_cancelled() {
        println!(
            "{summary}\n\ndemo: cycle done; still running until Ctrl-C.\n  open   {url}\n  token  {}\n  try    \
             \"Try auto refresh\" on a page that needs reauthorization (its user changed their password): \
             it fails, honestly.\n         On a refreshed page (its expired token was renewed): it succeeds.\n         \
             Rate-limited pages retry when their limit ends.",
            login_token.expose()
        );
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(Duration::from_secs(30)) => {
                    // Printed again only when something moved, not every 30 s.
                    let now = summarize(&db, &sim, clock.elapsed()).await?;
                    if table_of(&now) != table_of(&summary) {
                        println!("{now}");
                    }
                    summary = now;
                }
            }
        }
    }
    shutdown.cancel();
    worker.await.context("worker task failed")??;
    server.await.context("server task failed")??;
    sim.shutdown().await;
    Ok(summary)
}

/// A fresh admin token for this run.
fn fresh_login_token() -> Secret {
    let bytes: [u8; 24] = rand::random();
    Secret::new(bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// Binds `addr`; when it is taken (a `producer serve` on `API_BIND`, an earlier demo), any free
/// port on the same interface, so the demo still starts and prints where it is.
async fn listen(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => Ok(l),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            let any = SocketAddr::new(addr.ip(), 0);
            tokio::net::TcpListener::bind(any).await.with_context(|| format!("cannot listen on {any}"))
        }
        Err(e) => Err(e).with_context(|| format!("cannot listen on {addr}")),
    }
}

/// The summary without its last line (the request count and elapsed time always move).
fn table_of(summary: &str) -> &str {
    summary.rsplit_once('\n').map_or(summary, |(table, _)| table)
}

async fn summarize(db: &PgPool, sim: &GraphSim, elapsed: Duration) -> anyhow::Result<String> {
    let counts = shared::store::status_counts(db).await?;
    let total: i64 = counts.values().sum();
    let rows = shared::store::TokenStatus::ALL
        .map(shared::store::TokenStatus::as_str)
        .map(|status| (status, counts.get(status).copied().unwrap_or(0)));
    let requests = sim.request_count();
    Ok(format!(
        "\n{}\nGraph API requests: {requests} ({:.2} per channel); elapsed {:.1} s",
        crate::table::counts("status", rows),
        requests as f64 / total.max(1) as f64,
        elapsed.as_secs_f64()
    ))
}

/// The demo's database: `<name>_demo` on the server `url` names, where `<name>` is the database
/// `url` would connect to (its path, or a `dbname=` parameter, which sqlx lets override the path;
/// `fb_token_refresh` when it names none). `dbname=` is dropped from the result and the result is
/// parsed again the way the pool will parse it, so no parameter can point the demo elsewhere.
pub fn demo_database(url: &Secret) -> anyhow::Result<Secret> {
    let options: PgConnectOptions = url.expose().parse().context("DATABASE_URL is not a Postgres URL")?;
    let name = match options.get_database() {
        Some(n) if !n.is_empty() => n.to_owned(),
        _ => "fb_token_refresh".to_owned(),
    };
    let demo = if name.ends_with("_demo") { name } else { format!("{name}_demo") };
    let mut parsed = url::Url::parse(url.expose()).context("DATABASE_URL is not a URL")?;
    let kept: Vec<(String, String)> =
        parsed.query_pairs().filter(|(k, _)| k != "dbname").map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    parsed.set_query(None);
    if !kept.is_empty() {
        parsed.query_pairs_mut().extend_pairs(kept);
    }
    parsed.set_path(&format!("/{}", utf8_path_segment(&demo)));
    let rewritten = Secret::new(parsed.to_string());
    let check: PgConnectOptions = rewritten.expose().parse().context("cannot rewrite DATABASE_URL for the demo")?;
    anyhow::ensure!(
        check.get_database() == Some(demo.as_str()),
        "cannot point DATABASE_URL at the demo database {demo:?}; refusing to run the demo"
    );
    Ok(rewritten)
}

/// A database name as one URL path segment: sqlx percent-decodes the path, so a `/`, `?` or `#` in
/// the name must not end the segment.
fn utf8_path_segment(name: &str) -> String {
    url::form_urlencoded::byte_serialize(name.as_bytes()).collect::<String>().replace('+', "%20")
}

/// The demo's Redis prefix: under the configured one, so it shares the namespace (and any ACL on
/// it) without ever being equal to it, and deleting `demo_prefix*` cannot reach the system's keys
/// (none of which is named `demo:…`).
pub fn demo_prefix(prefix: &str) -> String {
    format!("{prefix}demo:")
}

fn database_name(url: &Secret) -> String {
    url.expose().parse::<PgConnectOptions>().ok().and_then(|o| o.get_database().map(str::to_owned)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_database_is_separate() {
        let d = demo_database(&Secret::new("postgres://postgres@127.0.0.1:5432/fb_token_refresh")).expect("url");
        assert_eq!(d.expose(), "postgres://postgres@127.0.0.1:5432/fb_token_refresh_demo");
        let again = demo_database(&d).expect("url");
        assert_eq!(again.expose(), d.expose());
    }

    fn database_of(url: &Secret) -> Option<String> {
        url.expose().parse::<PgConnectOptions>().expect("parses").get_database().map(str::to_owned)
    }

    #[test]
    fn demo_database_ignores_a_dbname_parameter() {
        // sqlx lets `?dbname=` override the path; the old rewrite only changed the path, so the
        // demo truncated `prod`.
        let d = demo_database(&Secret::new("postgres://u@h/?dbname=prod")).expect("url");
        assert_eq!(database_of(&d).as_deref(), Some("prod_demo"));
        let d = demo_database(&Secret::new(
            "postgres://u:p@h:6543/chatwoot?sslmode=require&dbname=prod&application_name=x",
        ))
        .expect("url");
        assert_eq!(database_of(&d).as_deref(), Some("prod_demo"));
        let options: PgConnectOptions = d.expose().parse().expect("parses");
        assert_eq!(options.get_port(), 6543);
        assert!(d.expose().contains("sslmode=require"), "other parameters are kept");
        let d = demo_database(&Secret::new("postgres://u@h/a%2Fb%3Fc")).expect("url");
        assert_eq!(database_of(&d).as_deref(), Some("a/b?c_demo"));
        let d = demo_database(&Secret::new("postgres://u@h")).expect("url");
        assert_eq!(database_of(&d).as_deref(), Some("fb_token_refresh_demo"));
    }

    #[test]
    fn demo_prefix_is_never_the_configured_one() {
        assert_eq!(demo_prefix(""), "demo:");
        assert_eq!(demo_prefix("prod:"), "prod:demo:");
    }
}
