//! `/me/accounts` sweeps shared by the jobs of one process: a storm of send failures about many
//! pages of one user token (one person connected them all) costs one sweep, not one per page.
//!
//! Kept in memory only, for [`FRESH_FOR`]: a sweep's answer holds page tokens, which never go to
//! Redis or Postgres. Jobs asking while a sweep is under way wait for it (one call in flight per
//! user token). A failed sweep is not kept: the next job asks Graph itself.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio::sync::OnceCell;

use crate::{
    graph::{GraphClient, GraphError, PageLookup},
    secret::Secret,
    store,
};

/// How long a sweep answers for other pages of its user. Page tokens got from a long-lived user
/// token do not expire, and each one found is validated before it is written.
pub const FRESH_FOR: Duration = Duration::from_secs(30);

/// Entries past this many are pruned of stale ones before another is added.
const PRUNE_AT: usize = 1_024;

type Answer = Result<Arc<HashMap<String, PageLookup>>, GraphError>;

struct Entry {
    at: Instant,
    answer: Arc<OnceCell<Answer>>,
}

#[derive(Clone, Default)]
pub struct Sweeps {
    recent: Arc<Mutex<HashMap<Vec<u8>, Entry>>>,
}

impl std::fmt::Debug for Sweeps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sweeps").finish_non_exhaustive()
    }
}

impl Sweeps {
    /// The user token's view of the page, from a sweep of all its pages made within
    /// [`FRESH_FOR`] (or now).
    /// `Ok((lookup, shared))`: `shared` when the answer came from another job's sweep.
    pub async fn find(
        &self,
        graph: &GraphClient,
        user_token: &Secret,
        page_id: &str,
    ) -> Result<(PageLookup, bool), GraphError> {
        crate::graph::check_page_id(page_id)?;
        let key = store::user_token_digest(user_token);
        let (cell, shared) = self.cell(&key, false);
        Ok((self.answer(graph, user_token, page_id, &key, cell).await?, shared))
    }

    /// A sweep of the caller's own, made now; it replaces the shared one for later jobs.
    pub async fn fresh(
        &self,
        graph: &GraphClient,
        user_token: &Secret,
        page_id: &str,
    ) -> Result<PageLookup, GraphError> {
        crate::graph::check_page_id(page_id)?;
        let key = store::user_token_digest(user_token);
        let (cell, _) = self.cell(&key, true);
        self.answer(graph, user_token, page_id, &key, cell).await
    }

    async fn answer(
        &self,
        graph: &GraphClient,
        user_token: &Secret,
        page_id: &str,
        key: &[u8],
        cell: Arc<OnceCell<Answer>>,
    ) -> Result<PageLookup, GraphError> {
        let answer = cell.get_or_init(|| async { graph.all_page_tokens(user_token).await.map(Arc::new) }).await;
        match answer {
            Ok(pages) => Ok(pages.get(page_id).cloned().unwrap_or(PageLookup::NotManaged)),
            Err(e) => {
                let e = e.clone();
                self.forget(key, &cell);
                Err(e)
            }
        }
    }

    /// The entry to read (`true`: another job's) or a new one to fill.
    fn cell(&self, key: &[u8], fresh: bool) -> (Arc<OnceCell<Answer>>, bool) {
        let mut recent = self.recent.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !fresh
            && let Some(e) = recent.get(key)
            && e.at.elapsed() < FRESH_FOR
        {
            return (e.answer.clone(), true);
        }
        if recent.len() >= PRUNE_AT {
            recent.retain(|_, e| e.at.elapsed() < FRESH_FOR);
        }
        let answer = Arc::new(OnceCell::new());
        recent.insert(key.to_vec(), Entry { at: Instant::now(), answer: answer.clone() });
        (answer, false)
    }

    /// Drops a failed sweep, unless a newer one took its place already.
    fn forget(&self, key: &[u8], cell: &Arc<OnceCell<Answer>>) {
        let mut recent = self.recent.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if recent.get(key).is_some_and(|e| Arc::ptr_eq(&e.answer, cell)) {
            recent.remove(key);
        }
    }
}
