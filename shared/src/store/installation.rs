//! The Facebook app's id and secret from Chatwoot's `installation_configs`, where Chatwoot's super
//! admin keeps them (`FB_APP_ID`, `FB_APP_SECRET`), for when the environment does not say.
//!
//! `serialized_value` (jsonb) holds one of two shapes (Chatwoot's `InstallationConfig` coder loads
//! both): a JSON object `{"value": ...}`, as Chatwoot writes today, or a JSON string holding the
//! YAML dump of older versions, `--- !ruby/hash:ActiveSupport::HashWithIndifferentAccess\nvalue: ...\n`.

use sqlx::PgPool;
use tracing::info;

use crate::{config::Config, secret::Secret};

#[derive(Debug, thiserror::Error)]
pub enum InstallationError {
    /// Names the row, never its value: the row may be the app secret.
    #[error("installation_configs row {name}: {reason}")]
    Unreadable { name: String, reason: String },
    #[error("cannot read installation_configs: {0}")]
    Db(#[from] sqlx::Error),
}

/// Where a credential came from, for the log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Environment,
    InstallationConfigs,
    Unset,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Self::Environment => "environment",
            Self::InstallationConfigs => "installation_configs",
            Self::Unset => "unset",
        }
    }
}

/// Fills `FB_APP_ID` / `FB_APP_SECRET` that the environment left unset from Chatwoot's table, when
/// the database has it; the environment wins. Logs where each came from, never the value.
pub async fn apply_app_credentials(db: &PgPool, config: &mut Config) -> Result<[Source; 2], InstallationError> {
    let mut sources = [
        if config.fb_app_id.is_some() { Source::Environment } else { Source::Unset },
        if config.fb_app_secret.is_some() { Source::Environment } else { Source::Unset },
    ];
    if sources.contains(&Source::Unset) && has_installation_configs(db).await? {
        let rows: Vec<(String, serde_json::Value)> = sqlx::query_as(
            "SELECT name, serialized_value FROM installation_configs WHERE name IN ('FB_APP_ID', 'FB_APP_SECRET')",
        )
        .fetch_all(db)
        .await?;
        for (name, stored) in rows {
            let value =
                stored_value(&stored).map_err(|reason| InstallationError::Unreadable { name: name.clone(), reason })?;
            let Some(value) = value.filter(|v| !v.trim().is_empty()) else { continue };
            match name.as_str() {
                "FB_APP_ID" if config.fb_app_id.is_none() => {
                    config.fb_app_id = Some(value);
                    sources[0] = Source::InstallationConfigs;
                }
                "FB_APP_SECRET" if config.fb_app_secret.is_none() => {
                    config.fb_app_secret = Some(Secret::new(value));
                    sources[1] = Source::InstallationConfigs;
                }
                _ => {}
            }
        }
    }
    info!(fb_app_id = sources[0].as_str(), fb_app_secret = sources[1].as_str(), "Facebook app credentials");
    Ok(sources)
}

/// `config` completed by `apply_app_credentials`.
pub async fn with_app_credentials(db: &PgPool, config: &Config) -> Result<Config, InstallationError> {
    let mut config = config.clone();
    apply_app_credentials(db, &mut config).await?;
    Ok(config)
}

/// Chatwoot's table is there only when the database is Chatwoot's.
async fn has_installation_configs(db: &PgPool) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(r#"SELECT to_regclass('installation_configs') IS NOT NULL AS "present!""#).fetch_one(db).await
}

/// The `value` of a stored `serialized_value`; `Ok(None)` when it holds none (Chatwoot's `{}`
/// default, a null value). The error says what is wrong with the shape, never the content.
pub fn stored_value(stored: &serde_json::Value) -> Result<Option<String>, String> {
    use serde_json::Value;
    match stored {
        Value::Object(map) => match map.get("value") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(_) => Err("\"value\" is neither a string nor a number".into()),
        },
        Value::String(yaml) => legacy_yaml_value(yaml),
        _ => Err("serialized_value is neither a JSON object nor Chatwoot's legacy YAML string".into()),
    }
}

const LEGACY_HEADER: &str = "--- !ruby/hash:ActiveSupport::HashWithIndifferentAccess";

/// The `value:` of Chatwoot's legacy YAML dump.
///
/// Read by hand rather than with a YAML crate: the only maintained-enough candidates are large, and
/// serde_yaml is unmaintained. What Ruby's Psych writes for this one-key hash is narrow: the header
/// line, then `value: ` and a scalar, plain (`value: 1234`), single-quoted where it would otherwise
/// read as another type (`value: '1234'`) or double-quoted where it needs escapes. Psych folds a
/// long scalar onto indented continuation lines at spaces; those are joined back. Anything else
/// (block scalars, tags, anchors) is refused, so a value is never guessed.
fn legacy_yaml_value(yaml: &str) -> Result<Option<String>, String> {
    let mut lines = yaml.lines();
    let header = lines.next().unwrap_or_default().trim_end();
    if header != LEGACY_HEADER && header != "---" {
        return Err("serialized_value is a string but not Chatwoot's legacy YAML hash".into());
    }
    let mut lines = lines.peekable();
    while let Some(line) = lines.next() {
        let Some(rest) = line.strip_prefix("value:") else { continue };
        let mut scalar = rest.trim().to_owned();
        while let Some(next) = lines.peek().filter(|l| l.starts_with([' ', '\t'])) {
            scalar.push(' ');
            scalar.push_str(next.trim());
            lines.next();
        }
        return yaml_scalar(&scalar).map_err(|why| format!("legacy YAML value {why}"));
    }
    Ok(None)
}

fn yaml_scalar(s: &str) -> Result<Option<String>, String> {
    match s.chars().next() {
        None | Some('~') if s.len() <= 1 => Ok(None),
        Some('\'') => single_quoted(s).map(Some),
        Some('"') => double_quoted(s).map(Some),
        Some('|' | '>' | '!' | '&' | '*' | '[' | '{') => Err("uses YAML this reader does not take".into()),
        _ => {
            // A plain scalar ends at ` #` (a comment).
            let plain = s.split_once(" #").map_or(s, |(v, _)| v).trim_end();
            Ok((!matches!(plain, "null" | "Null" | "NULL")).then(|| plain.to_owned()))
        }
    }
}

fn single_quoted(s: &str) -> Result<String, String> {
    let inner = s.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')).ok_or("has an unterminated quote")?;
    let mut out = String::new();
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' {
            // The only escape in single quotes is the doubled quote.
            if chars.next() != Some('\'') {
                return Err("has a stray quote".into());
            }
        }
        out.push(c);
    }
    Ok(out)
}

fn double_quoted(s: &str) -> Result<String, String> {
    let inner = s.strip_prefix('"').and_then(|r| r.strip_suffix('"')).ok_or("has an unterminated quote")?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Err("has a stray quote".into()),
            '\\' => {
                let escaped = match chars.next().ok_or("ends in a backslash")? {
                    '\\' => '\\',
                    '"' => '"',
                    '/' => '/',
                    ' ' => ' ',
                    '0' => '\0',
                    'a' => '\u{7}',
                    'b' => '\u{8}',
                    't' | '\t' => '\t',
                    'n' => '\n',
                    'v' => '\u{b}',
                    'f' => '\u{c}',
                    'r' => '\r',
                    'e' => '\u{1b}',
                    'N' => '\u{85}',
                    '_' => '\u{a0}',
                    'L' => '\u{2028}',
                    'P' => '\u{2029}',
                    'x' => hex_char(&mut chars, 2)?,
                    'u' => hex_char(&mut chars, 4)?,
                    'U' => hex_char(&mut chars, 8)?,
                    _ => return Err("has an unknown escape".into()),
                };
                out.push(escaped);
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

fn hex_char(chars: &mut std::str::Chars<'_>, digits: usize) -> Result<char, String> {
    let hex: String = chars.by_ref().take(digits).collect();
    u32::from_str_radix(&hex, 16)
        .ok()
        .filter(|_| hex.len() == digits)
        .and_then(char::from_u32)
        .ok_or_else(|| "has a bad \\x/\\u escape".into())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn legacy(scalar: &str) -> serde_json::Value {
        json!(format!("{LEGACY_HEADER}\nvalue: {scalar}\n"))
    }

    #[test]
    fn reads_the_json_object_form() {
        assert_eq!(stored_value(&json!({"value": "abc123"})), Ok(Some("abc123".into())));
        assert_eq!(stored_value(&json!({"value": 1234567890})), Ok(Some("1234567890".into())));
        assert_eq!(stored_value(&json!({})), Ok(None));
        assert_eq!(stored_value(&json!({"value": null})), Ok(None));
        assert!(stored_value(&json!({"value": ["x"]})).is_err());
        assert!(stored_value(&json!(42)).is_err());
    }

    #[test]
    fn reads_the_legacy_yaml_form() {
        assert_eq!(stored_value(&legacy("1234567890")), Ok(Some("1234567890".into())));
        assert_eq!(stored_value(&legacy("'1234567890'")), Ok(Some("1234567890".into())));
        assert_eq!(stored_value(&legacy("'it''s'")), Ok(Some("it's".into())));
        assert_eq!(stored_value(&legacy(r#""a\"b\\c\x41\u00e9""#)), Ok(Some("a\"b\\cAé".into())));
        assert_eq!(stored_value(&legacy("abc # note")), Ok(Some("abc".into())));
        assert_eq!(stored_value(&legacy("")), Ok(None));
        assert_eq!(stored_value(&legacy("~")), Ok(None));
        assert_eq!(stored_value(&json!(format!("{LEGACY_HEADER}\n"))), Ok(None));
        // Psych folds a long scalar onto indented lines.
        assert_eq!(stored_value(&json!(format!("{LEGACY_HEADER}\nvalue: a b\n  c d\n"))), Ok(Some("a b c d".into())));
    }

    #[test]
    fn refuses_what_it_cannot_read_without_echoing_it() {
        for bad in [
            legacy("'s3cr3t"),
            legacy(r#""s3cr3t \q""#),
            legacy("|-\n  s3cr3t"),
            legacy("!binary s3cr3t"),
            json!("s3cr3t"),
            json!({"value": {"s3cr3t": 1}}),
        ] {
            let e = stored_value(&bad).expect_err("refused");
            assert!(!e.contains("s3cr3t"), "{e}");
        }
    }
}
