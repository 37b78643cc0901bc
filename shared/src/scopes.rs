//! A send that failed for a permission is not answered by a token that merely works: the page
//! validation (`GET /{page}?fields=id,name`) succeeds without `pages_messaging`, which only
//! `debug_token` shows. Only jobs started by such a report check it: one more call per channel
//! would be too costly in every cycle.

use tracing::warn;

use crate::{
    graph::{ErrorKind, GraphError, MESSAGING_SCOPE, TokenInfo},
    job::{Capability, RefreshJob},
    pipeline::Pipeline,
    secret::Secret,
};

impl Pipeline {
    /// Whether `token` can do what the job needs. A Permission error (a confirmed failure) when
    /// Graph says it cannot; any other error means it could not tell.
    pub(crate) async fn check_needs(&self, job: &RefreshJob, token: &Secret) -> Result<(), GraphError> {
        let Some(Capability::Messaging) = job.v1().needs else { return Ok(()) };
        if self.graph.app_token().is_none() {
            static WARNED: std::sync::Once = std::sync::Once::new();
            WARNED.call_once(|| {
                warn!(
                    "FB_APP_ID and FB_APP_SECRET are not set: a send reported failing for a permission cannot be checked \
                     for {MESSAGING_SCOPE} (debug_token needs the app token), so a page token that works counts as healthy"
                );
            });
            return Ok(());
        }
        messaging_verdict(self.graph.debug_token(token).await)
    }
}

fn messaging_verdict(answer: Result<TokenInfo, GraphError>) -> Result<(), GraphError> {
    let info = match answer {
        Ok(info) => info,
        Err(e) if matches!(e.kind, ErrorKind::Transient | ErrorKind::RateLimited) => return Err(e),
        // The call's own rejection is about the app token it carries, never about the page token.
        Err(e) => return Err(GraphError { kind: ErrorKind::Invalid, ..e }),
    };
    if !info.is_valid {
        // Validation just accepted this token; only a reason Graph classifies outweighs that.
        return Err(match info.error {
            Some(e) if e.kind.is_confirmed_failure() => e,
            _ => GraphError::transport("debug_token calls the page token invalid without a classified reason"),
        });
    }
    if info.scopes.iter().any(|s| s == MESSAGING_SCOPE) {
        return Ok(());
    }
    Err(GraphError {
        kind: ErrorKind::Permission,
        message: format!(
            "messaging permission missing: the page token lacks {MESSAGING_SCOPE}, so the page cannot send messages \
             until a person reconnects it and grants {MESSAGING_SCOPE}"
        ),
        ..GraphError::transport("")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(is_valid: bool, scopes: &[&str], error: Option<GraphError>) -> TokenInfo {
        TokenInfo {
            is_valid,
            expires_at: None,
            data_access_expires_at: None,
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            error,
        }
    }

    fn coded(code: i64, kind: ErrorKind) -> GraphError {
        GraphError { kind, code: Some(code), ..GraphError::transport("x") }
    }

    #[test]
    fn only_graph_saying_so_about_the_page_token_is_a_confirmed_failure() {
        assert_eq!(messaging_verdict(Ok(info(true, &["pages_show_list", "pages_messaging"], None))), Ok(()));
        let missing = messaging_verdict(Ok(info(true, &["pages_show_list"], None))).expect_err("missing");
        assert_eq!((missing.kind, missing.code), (ErrorKind::Permission, None));
        assert!(missing.message.contains("messaging permission missing"), "{}", missing.message);
        let dead = messaging_verdict(Ok(info(false, &[], Some(coded(190, ErrorKind::Auth))))).expect_err("dead");
        assert_eq!(dead.kind, ErrorKind::Auth);
        let unexplained = messaging_verdict(Ok(info(false, &["pages_messaging"], None))).expect_err("invalid");
        assert_eq!(unexplained.kind, ErrorKind::Transient);
        // A 190 about the app token (a wrong secret) must not count against the page.
        let app = messaging_verdict(Err(coded(190, ErrorKind::Auth))).expect_err("app token refused");
        assert_eq!(app.kind, ErrorKind::Invalid);
        for kind in [ErrorKind::Transient, ErrorKind::RateLimited] {
            assert_eq!(messaging_verdict(Err(coded(1, kind))).expect_err("kept").kind, kind);
        }
    }
}
