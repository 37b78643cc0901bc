//! Chatwoot's own connection variables, so the system starts from Chatwoot's `.env` as it is:
//! `POSTGRES_*` build `DATABASE_URL` when that is unset, and `REDIS_PASSWORD` goes into a
//! `REDIS_URL` that carries none (Chatwoot's `lib/redis/config.rb` passes it beside the URL).

use super::{ConfigError, err};
// Any user name, password or database name must survive the URL (sqlx and redis decode them).
use crate::percent::encode;

pub const POSTGRES_VARS: [&str; 5] =
    ["POSTGRES_HOST", "POSTGRES_PORT", "POSTGRES_USERNAME", "POSTGRES_PASSWORD", "POSTGRES_DATABASE"];

/// The production section of Chatwoot's `config/database.yml`: the operator beside a real
/// Chatwoot runs its production settings, so a variable their `.env` leaves out means what it
/// means to Chatwoot there.
const DEFAULT_HOST: &str = "localhost";
const DEFAULT_PORT: u16 = 5432;
const DEFAULT_USERNAME: &str = "chatwoot_prod";
const DEFAULT_PASSWORD: &str = "chatwoot_prod";
const DEFAULT_DATABASE: &str = "chatwoot_production";

/// `DATABASE_URL` from `POSTGRES_*`, or `None` when none of them is set.
///
/// `get` ignores empty values; `raw` does not. `POSTGRES_PASSWORD=` (empty, as in Chatwoot's
/// `.env.example`) is a password-less login to Chatwoot (`ENV.fetch` returns the empty string), not
/// a reason to fall back to its default password, so the password alone is read raw.
pub fn database_url(
    get: &impl Fn(&str) -> Option<String>,
    raw: &impl Fn(&str) -> Option<String>,
) -> Result<Option<String>, ConfigError> {
    if POSTGRES_VARS.iter().all(|v| get(v).is_none()) {
        return Ok(None);
    }
    let host = host(&get("POSTGRES_HOST").unwrap_or_else(|| DEFAULT_HOST.into()))?;
    let port = match get("POSTGRES_PORT") {
        None => DEFAULT_PORT,
        Some(v) => match v.trim().parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => return Err(err("POSTGRES_PORT", &v, "must be a TCP port 1..=65535")),
        },
    };
    let username = get("POSTGRES_USERNAME").unwrap_or_else(|| DEFAULT_USERNAME.into());
    let password = raw("POSTGRES_PASSWORD").unwrap_or_else(|| DEFAULT_PASSWORD.into());
    let database = get("POSTGRES_DATABASE").unwrap_or_else(|| DEFAULT_DATABASE.into());
    let login =
        if password.is_empty() { encode(&username) } else { format!("{}:{}", encode(&username), encode(&password)) };
    Ok(Some(format!("postgres://{login}@{host}:{port}/{}", encode(&database))))
}

/// The URL's host part for `POSTGRES_HOST`: a name or IPv4 address as it is, an IPv6 address in
/// brackets, and a socket directory (Rails takes one starting with `/`) percent-encoded, which
/// sqlx reads back as a socket.
fn host(v: &str) -> Result<String, ConfigError> {
    let v = v.trim();
    if v.starts_with('/') {
        return Ok(encode(v));
    }
    let host = match v.parse::<std::net::Ipv6Addr>() {
        Ok(_) => format!("[{v}]"),
        Err(_) => v.to_owned(),
    };
    // A port, user info or path smuggled into the host would silently change where we connect.
    let smuggled = !host.starts_with('[') && host.contains([':', '@', '/', '?', '#']);
    if smuggled || url::Host::parse(&host).is_err() {
        return Err(err("POSTGRES_HOST", v, "must be a host name, an IP address or a socket directory"));
    }
    Ok(host)
}

/// Puts `password` into a Redis URL that has none; a password in the URL itself wins.
pub fn redis_url_with_password(url: &str, password: Option<&str>) -> Result<String, ConfigError> {
    let Some(password) = password else { return Ok(url.to_owned()) };
    let mut parsed = url::Url::parse(url).map_err(|_| err("REDIS_URL", "[redacted]", "is not a valid URL"))?;
    if parsed.password().is_some() {
        return Ok(url.to_owned());
    }
    // Encoded here: the url crate leaves `%` as it is, and Redis would decode it.
    parsed
        .set_password(Some(&encode(password)))
        .map_err(|_| err("REDIS_PASSWORD", "[redacted]", "cannot be added to REDIS_URL (it has no host)"))?;
    Ok(parsed.into())
}
