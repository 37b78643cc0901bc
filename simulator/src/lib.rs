//! A faithful Facebook Graph API simulator for tests, benchmarks and `producer demo`.
//!
//! It serves the calls this system makes (`GET /{page_id}`, `GET /me/accounts`, `GET /debug_token`,
//! `GET /oauth/access_token`, `GET`/`POST`/`DELETE /{page_id}/subscribed_apps`, batch `POST /`)
//! with Facebook's paths, JSON, error codes and HTTP
//! statuses, checks `appsecret_proof`, simulates rate limits with their usage headers, and lets a
//! test kill tokens, revoke roles, delete pages and inject transport faults. Every request costs
//! O(1) map lookups (O(limit) for an accounts page); no lock is held across an await.

mod accounts;
mod batch;
mod call;
mod cursor;
mod errors;
mod faults;
mod limits;
mod log;
mod oauth;
mod reply;
mod routes;
mod server;
mod sim;
mod state;
mod subscriptions;
#[cfg(test)]
mod tests;

use std::{
    net::{Ipv4Addr, SocketAddr},
    sync::{Arc, Mutex, atomic::Ordering},
    time::Duration,
};

use axum::{Router, extract::DefaultBodyLimit};
use tokio::{sync::watch, task::JoinHandle};

pub use faults::{Fault, FaultId, FaultKind, Matcher};
pub use log::LoggedRequest;

use self::{
    errors::GraphError,
    sim::{Sim, lock, now},
};

/// How the simulator behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimOptions {
    pub app_id: String,
    /// With `None` any `APP_ID|...` app token and any client secret is accepted, and proofs are not checked.
    pub app_secret: Option<String>,
    /// Every call carrying a (non-app) token must carry a valid `appsecret_proof`.
    pub require_proof: bool,
    /// The version in `base_url()` (any `vNN.N` prefix, or none, is accepted on requests).
    pub version: String,
    /// Added to every request before it is answered.
    pub latency: Duration,
    pub page_size_default: usize,
    pub page_size_max: usize,
}

impl Default for SimOptions {
    fn default() -> Self {
        Self {
            app_id: "1234567890".into(),
            app_secret: Some("sim-app-secret".into()),
            require_proof: true,
            version: "v24.0".into(),
            latency: Duration::ZERO,
            page_size_default: 25,
            page_size_max: 100,
        }
    }
}

/// A running simulator. Clones share it; it stops when the last clone drops or on `shutdown()`.
#[derive(Clone)]
pub struct GraphSim {
    inner: Arc<Handle>,
}

struct Handle {
    sim: Arc<Sim>,
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

impl std::fmt::Debug for GraphSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphSim").field("addr", &self.inner.sim.addr).finish_non_exhaustive()
    }
}

/// Batches of 50 items with long tokens fit easily.
const BODY_LIMIT: usize = 16 * 1024 * 1024;

impl GraphSim {
    /// Starts on `127.0.0.1` and a free port.
    pub async fn start(opts: SimOptions) -> std::io::Result<GraphSim> {
        Self::start_on(opts, SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await
    }

    pub async fn start_on(opts: SimOptions, addr: SocketAddr) -> std::io::Result<GraphSim> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let nodelay = shared::listener::nodelay;
        let (stop_tx, stop_rx) = watch::channel(false);
        let sim = Arc::new(Sim::new(opts, addr, stop_rx.clone()));
        let app = Router::new()
            .fallback(server::handle)
            .layer(DefaultBodyLimit::max(BODY_LIMIT))
            .with_state(Arc::clone(&sim));
        let mut stop = stop_rx;
        let task = tokio::spawn(async move {
            let signal = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            if let Err(e) = axum::serve(nodelay(listener), app).with_graceful_shutdown(signal).await {
                tracing::warn!(error = %e, "Graph simulator server stopped with an error");
            }
        });
        let handle = Handle { sim, stop: stop_tx, task: Mutex::new(Some(task)) };
        Ok(GraphSim { inner: Arc::new(handle) })
    }

    fn sim(&self) -> &Sim {
        &self.inner.sim
    }

    /// `http://127.0.0.1:PORT/v24.0`: what `FB_GRAPH_URL` is set to.
    pub fn base_url(&self) -> String {
        format!("http://{}/{}", self.sim().addr, self.sim().opts.version)
    }

    pub fn addr(&self) -> SocketAddr {
        self.sim().addr
    }

    /// The options it was started with (latency as started; see `set_latency`).
    pub fn options(&self) -> &SimOptions {
        &self.sim().opts
    }

    /// `APP_ID|APP_SECRET`, the app access token `debug_token` wants (`None` without a secret).
    pub fn app_token(&self) -> Option<String> {
        self.sim().app_token()
    }

    /// The `appsecret_proof` for `token` under this simulator's app secret.
    pub fn proof(&self, token: &str) -> Option<String> {
        use hmac::{Hmac, Mac};
        let secret = self.sim().opts.app_secret.as_ref()?;
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).ok()?;
        mac.update(token.as_bytes());
        Some(hex::encode(mac.finalize().into_bytes()))
    }

    /// Stops accepting connections, ends hanging requests and waits (at most 5 s) for the server to stop.
    pub async fn shutdown(&self) {
        let _ = self.inner.stop.send(true);
        let task = lock(&self.inner.task).take();
        if let Some(task) = task {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }

    // ---- the world ----

    /// Creates the user if new; returns a new valid long-lived (60 days) user token.
    pub fn add_user(&self, user_id: &str) -> String {
        lock(&self.sim().world).add_user(user_id, now())
    }

    /// Creates the page, or renames (and undeletes) an existing one.
    pub fn add_page(&self, page_id: &str, name: &str) {
        lock(&self.sim().world).add_page(page_id, name);
    }

    /// The user becomes admin of the page (both created if missing); returns the current live page
    /// token for (page, user), minting one if needed.
    pub fn grant(&self, user_id: &str, page_id: &str) -> String {
        lock(&self.sim().world).grant(user_id, page_id, now())
    }

    /// The user is no longer admin: the page leaves their `/me/accounts` and page tokens minted
    /// through them answer 190/492.
    pub fn revoke_role(&self, user_id: &str, page_id: &str) {
        lock(&self.sim().world).revoke_role(user_id, page_id);
    }

    /// `GET /{page_id}` answers 100/33, its tokens die, it leaves every `/me/accounts`.
    pub fn delete_page(&self, page_id: &str) {
        lock(&self.sim().world).delete_page(page_id);
    }

    /// The current page token for (page, user) now answers this error; `/me/accounts` (or
    /// `GET /{page_id}?fields=access_token`) with a valid user token mints a fresh one.
    pub fn kill_page_token(&self, page_id: &str, user_id: &str, code: i64, subcode: Option<i64>, message: &str) {
        lock(&self.sim().world).kill_page_token(page_id, user_id, GraphError::from_code(code, subcode, message));
    }

    /// The person took `scope` (e.g. `pages_messaging`) away for this page: `debug_token` no longer
    /// lists it for any of the page's tokens, including those `/me/accounts` hands out later. The
    /// tokens stay alive; validation still succeeds.
    pub fn revoke_page_scope(&self, page_id: &str, scope: &str) {
        lock(&self.sim().world).revoke_page_scope(page_id, scope);
    }

    /// Every call with this token (user or page) answers this error.
    pub fn kill_user_token(&self, user_token: &str, code: i64, subcode: Option<i64>, message: &str) {
        lock(&self.sim().world).kill_token(user_token, GraphError::from_code(code, subcode, message));
    }

    /// Unix seconds; 0 = never. A past `expires_at` answers 190/463, a past
    /// `data_access_expires_at` 190/493.
    pub fn set_user_token_expiry(&self, user_token: &str, expires_at: i64, data_access_expires_at: i64) {
        lock(&self.sim().world).set_user_token_expiry(user_token, expires_at, data_access_expires_at);
    }

    /// The current page token for (page, user), alive or not.
    pub fn page_token(&self, page_id: &str, user_id: &str) -> Option<String> {
        lock(&self.sim().world).page_token(page_id, user_id)
    }

    pub fn is_token_valid_for_page(&self, page_id: &str, token: &str) -> bool {
        lock(&self.sim().world).is_token_valid_for_page(page_id, token, now())
    }

    /// `true`: a token the world never issued (a corrupted one) answers 190 "Malformed access
    /// token <token>", quoting it, as Graph does; on validation, `/me/accounts`, batch items and
    /// in `debug_token`'s `data.error`. `false` (the default): "Cannot parse access token".
    pub fn echo_malformed_tokens(&self, on: bool) {
        self.sim().set_echo_malformed(on);
    }

    // ---- webhook subscriptions ----

    /// (app id, subscribed fields) of every app subscribed to the page's webhooks, by app id. A
    /// page starts subscribed to this simulator's app with Chatwoot's fields, as Chatwoot leaves a
    /// page it connected.
    pub fn subscriptions(&self, page_id: &str) -> Vec<(String, Vec<String>)> {
        lock(&self.sim().world).subscriptions.of(page_id)
    }

    /// The fields this simulator's app receives for the page, if it is subscribed.
    pub fn app_subscription(&self, page_id: &str) -> Option<Vec<String>> {
        let app_id = &self.sim().opts.app_id;
        self.subscriptions(page_id).into_iter().find(|(a, _)| a == app_id).map(|(_, f)| f)
    }

    /// The page loses this simulator's app's subscription (someone removed it in Meta's tools, or
    /// the app was reinstalled): its messages go nowhere until it is subscribed again.
    pub fn drop_subscription(&self, page_id: &str) {
        let app_id = self.sim().opts.app_id.clone();
        lock(&self.sim().world).subscriptions.remove(page_id, &app_id);
    }

    /// Subscribes any app (another one, or this one with other fields) as `POST subscribed_apps`
    /// would, without a call.
    pub fn set_subscription(&self, page_id: &str, app_id: &str, fields: &[&str]) {
        let fields = fields.iter().map(|f| (*f).to_owned()).collect();
        lock(&self.sim().world).subscriptions.set(page_id, app_id, fields);
    }

    /// The page's `POST subscribed_apps` (a valid one: right token, permission, fields) answers
    /// this Graph error instead of subscribing, for the next `times` calls (`None`: until
    /// cleared); the HTTP status and `is_transient` follow the code, as for `kill_page_token`.
    pub fn fail_subscribe(&self, page_id: &str, code: i64, message: &str, times: Option<usize>) {
        let error = GraphError::from_code(code, None, message);
        lock(&self.sim().world).subscriptions.fail(page_id, error, times);
    }

    pub fn clear_subscribe_failures(&self) {
        lock(&self.sim().world).subscriptions.clear_failures();
    }

    // ---- rate limits ----

    /// Calls about this page (`/{page_id}...`, or `/me` with its page token), batch items included,
    /// answer this code (32, 613, 80001, ...) with `X-Business-Use-Case-Usage`;
    /// `estimated_time_to_regain_access` is left out when `regain_minutes` is `None`.
    pub fn rate_limit_page(&self, page_id: &str, code: i64, regain_minutes: Option<u64>) {
        lock(&self.sim().limits).limit_page(page_id, code, regain_minutes);
    }

    /// Code 4 with `X-App-Usage` at 100 %: for every call until cleared, or (`false`) for the next
    /// call only.
    pub fn rate_limit_app(&self, until_cleared: bool) {
        lock(&self.sim().limits).limit_app(until_cleared);
    }

    /// Successful answers about this page (batch items included) carry
    /// `X-Business-Use-Case-Usage` with this `call_count` percentage and, when given,
    /// `estimated_time_to_regain_access` (minutes); `None` removes it. Cleared by
    /// `clear_rate_limits`.
    pub fn set_page_usage(&self, page_id: &str, usage: Option<(u32, Option<u64>)>) {
        lock(&self.sim().limits).set_page_usage(page_id, usage);
    }

    pub fn clear_rate_limits(&self) {
        lock(&self.sim().limits).clear();
    }

    /// Adds `X-App-Usage: {"call_count": pct, ...}` to every answer; `None` removes it.
    pub fn set_usage_headers(&self, app_call_count_pct: Option<u32>) {
        lock(&self.sim().limits).set_usage(app_call_count_pct);
    }

    // ---- faults ----

    pub fn inject(&self, fault: Fault) -> FaultId {
        lock(&self.sim().faults).push(fault)
    }

    /// Removes one injected fault; false if it was already gone.
    pub fn remove_fault(&self, id: FaultId) -> bool {
        lock(&self.sim().faults).remove(id)
    }

    pub fn clear_faults(&self) {
        lock(&self.sim().faults).clear();
    }

    pub fn set_latency(&self, d: Duration) {
        self.sim().set_latency(d);
    }

    // ---- the request log ----

    /// Every request so far: HTTP requests, and after each batch its items (`batch_item: true`).
    pub fn requests(&self) -> Vec<LoggedRequest> {
        lock(&self.sim().log).entries.clone()
    }

    /// HTTP requests received since the last `reset_log` (a batch counts once; counted even
    /// with the log disabled).
    pub fn request_count(&self) -> usize {
        self.sim().count.load(Ordering::Relaxed)
    }

    /// Logged entries (batch items included) for which `f` holds.
    pub fn count_where(&self, f: impl Fn(&LoggedRequest) -> bool) -> usize {
        lock(&self.sim().log).entries.iter().filter(|r| f(r)).count()
    }

    pub fn reset_log(&self) {
        let mut log = lock(&self.sim().log);
        log.entries.clear();
        self.sim().count.store(0, Ordering::Relaxed);
        self.sim().batch_items.store(0, Ordering::Relaxed);
    }

    /// Items of batch requests since the last `reset_log`, counted even while logging is off.
    pub fn batch_item_count(&self) -> usize {
        self.sim().batch_items.load(Ordering::Relaxed)
    }

    /// Stops (`false`) or resumes keeping log entries, for long benchmarks; `request_count` still counts.
    pub fn set_logging(&self, enabled: bool) {
        lock(&self.sim().log).enabled = enabled;
    }
}
