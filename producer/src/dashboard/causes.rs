//! Why an inbox needs reconnecting, from the Graph error's code and subcode (never its message
//! text, which Facebook words differently per language and over time).

use shared::status::LastError;

use super::i18n::{CauseText, Strings};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    PasswordChanged,
    AppRemoved,
    PageGone,
    NotAdmin,
    PermissionsRevoked,
    SessionExpired,
    RateLimited,
    Generic,
}

impl Cause {
    pub fn of(error: Option<&LastError>) -> Self {
        let Some(e) = error else { return Self::Generic };
        match (e.code, e.subcode) {
            (Some(190), Some(460)) => Self::PasswordChanged,
            (Some(190), Some(458)) => Self::AppRemoved,
            (Some(190), Some(492)) => Self::NotAdmin,
            (Some(190), Some(463 | 493)) => Self::SessionExpired,
            (Some(100), Some(33)) => Self::PageGone,
            (Some(10 | 200..=299), _) => Self::PermissionsRevoked,
            (Some(4 | 17 | 32 | 341 | 613 | 80_000..=80_014), _) => Self::RateLimited,
            // No Graph code: the page is absent from the user's pages (the pipeline's own verdict),
            // or an HTTP 429 without an error object.
            (None, _) if e.kind.as_deref() == Some("not_found") => Self::PageGone,
            (None, _) if e.kind.as_deref() == Some("rate_limited") => Self::RateLimited,
            _ => Self::Generic,
        }
    }

    pub fn text(self, t: &'static Strings) -> &'static CauseText {
        match self {
            Self::PasswordChanged => &t.cause_password_changed,
            Self::AppRemoved => &t.cause_app_removed,
            Self::PageGone => &t.cause_page_gone,
            Self::NotAdmin => &t.cause_not_admin,
            Self::PermissionsRevoked => &t.cause_permissions_revoked,
            Self::SessionExpired => &t.cause_session_expired,
            Self::RateLimited => &t.cause_rate_limited,
            Self::Generic => &t.cause_generic,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Cause::*, *};

    fn err(kind: &str, code: Option<i64>, subcode: Option<i64>, message: &str) -> LastError {
        LastError { kind: Some(kind.into()), code, subcode, message: message.into() }
    }

    #[test]
    fn by_code_and_subcode() {
        let rows: &[(Option<i64>, Option<i64>, &str, Cause)] = &[
            (Some(190), Some(460), "auth", PasswordChanged),
            (Some(190), Some(458), "auth", AppRemoved),
            (Some(190), Some(492), "auth", NotAdmin),
            (Some(190), Some(463), "auth", SessionExpired),
            (Some(190), Some(493), "auth", SessionExpired),
            (Some(190), None, "auth", Generic),
            (Some(190), Some(459), "auth", Generic),
            (Some(102), None, "auth", Generic),
            (Some(100), Some(33), "not_found", PageGone),
            (Some(100), None, "invalid", Generic),
            (None, None, "not_found", PageGone),
            (Some(10), None, "permission", PermissionsRevoked),
            (Some(200), None, "permission", PermissionsRevoked),
            (Some(299), Some(1), "permission", PermissionsRevoked),
            (Some(4), None, "rate_limited", RateLimited),
            (Some(17), None, "rate_limited", RateLimited),
            (Some(32), None, "rate_limited", RateLimited),
            (Some(613), None, "rate_limited", RateLimited),
            (Some(80_001), None, "rate_limited", RateLimited),
            (Some(80_014), None, "rate_limited", RateLimited),
            (None, None, "rate_limited", RateLimited),
            (Some(1), None, "transient", Generic),
        ];
        for (code, subcode, kind, want) in rows {
            assert_eq!(Cause::of(Some(&err(kind, *code, *subcode, "x"))), *want, "{code:?}/{subcode:?}");
        }
        assert_eq!(Cause::of(None), Generic);
    }

    #[test]
    fn never_by_message_text() {
        let e = err("auth", Some(190), Some(460), "The user has not authorized application / page was deleted");
        assert_eq!(Cause::of(Some(&e)), PasswordChanged);
        let e = err("auth", Some(190), None, "password changed");
        assert_eq!(Cause::of(Some(&e)), Generic);
    }
}
