//! What the server and the handles share: options, the world, limits, faults and the log.

use std::{
    net::SocketAddr,
    sync::{
        Mutex, MutexGuard, PoisonError,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::watch;

use super::{
    SimOptions,
    errors::GraphError,
    faults::FaultStack,
    limits::Limits,
    log::{LoggedRequest, RequestLog},
    state::{Who, World},
};

pub(crate) struct Sim {
    pub opts: SimOptions,
    pub addr: SocketAddr,
    pub world: Mutex<World>,
    pub limits: Mutex<Limits>,
    pub faults: Mutex<FaultStack>,
    pub log: Mutex<RequestLog>,
    /// HTTP requests received (a batch counts once).
    pub count: AtomicUsize,
    /// Items of batch requests answered (Facebook counts each against the app's limits).
    pub batch_items: AtomicUsize,
    latency_nanos: AtomicU64,
    /// Tokens unknown to the world answer "Malformed access token <token>", as Graph does for a
    /// token it cannot parse, instead of "Cannot parse access token".
    echo_malformed: AtomicBool,
    /// Becomes true on shutdown: hanging requests end.
    pub stop: watch::Receiver<bool>,
}

/// Locks a mutex, ignoring poisoning (nothing here leaves state half-updated on a panic).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Sim {
    pub fn new(opts: SimOptions, addr: SocketAddr, stop: watch::Receiver<bool>) -> Self {
        let latency = duration_nanos(opts.latency);
        let world = World::new(&opts.app_id);
        Self {
            opts,
            addr,
            world: Mutex::new(world),
            limits: Mutex::new(Limits::default()),
            faults: Mutex::new(FaultStack::default()),
            log: Mutex::new(RequestLog::default()),
            count: AtomicUsize::new(0),
            batch_items: AtomicUsize::new(0),
            latency_nanos: AtomicU64::new(latency),
            echo_malformed: AtomicBool::new(false),
            stop,
        }
    }

    pub fn latency(&self) -> Duration {
        Duration::from_nanos(self.latency_nanos.load(Ordering::Relaxed))
    }

    pub fn set_latency(&self, d: Duration) {
        self.latency_nanos.store(duration_nanos(d), Ordering::Relaxed);
    }

    pub fn set_echo_malformed(&self, on: bool) {
        self.echo_malformed.store(on, Ordering::Relaxed);
    }

    /// The error for a token the world never issued.
    pub fn unknown_token(&self, token: &str) -> GraphError {
        if self.echo_malformed.load(Ordering::Relaxed) {
            GraphError::malformed_token(token)
        } else {
            GraphError::cannot_parse_token()
        }
    }

    pub fn app_token(&self) -> Option<String> {
        self.opts.app_secret.as_ref().map(|s| format!("{}|{}", self.opts.app_id, s))
    }

    /// `APP_ID|APP_SECRET` (any secret when the simulator has none) -> the app; a world token -> its
    /// owner if alive; anything else -> the error Graph gives.
    pub fn authenticate(&self, world: &World, token: &str, now: i64) -> Result<Who, GraphError> {
        if let Some((id, secret)) = token.split_once('|') {
            if id != self.opts.app_id {
                return Err(GraphError::cannot_parse_token());
            }
            return match &self.opts.app_secret {
                Some(s) if s != secret => Err(GraphError::bad_app_token_signature()),
                _ => Ok(Who::App),
            };
        }
        if world.token(token).is_none() {
            return Err(self.unknown_token(token));
        }
        world.check(token, now)
    }

    pub fn is_app_token(&self, token: &str) -> bool {
        token.split_once('|').is_some_and(|(id, _)| id == self.opts.app_id)
    }

    /// Whether `proof` is the appsecret_proof of `token`; `None` without an app secret.
    pub fn proof_ok(&self, token: &str, proof: &str) -> Option<bool> {
        let secret = self.opts.app_secret.as_ref()?;
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).ok()?;
        mac.update(token.as_bytes());
        let expected = hex::encode(mac.finalize().into_bytes());
        Some(expected.eq_ignore_ascii_case(proof))
    }

    pub fn record(&self, entries: Vec<LoggedRequest>) {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.batch_items.fetch_add(entries.iter().filter(|e| e.batch_item).count(), Ordering::Relaxed);
        let mut log = lock(&self.log);
        if log.enabled {
            log.entries.extend(entries);
        }
    }
}

fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
