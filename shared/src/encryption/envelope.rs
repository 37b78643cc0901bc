//! The column form: Rails' `MessageSerializer`, i.e. `{"p":b64,"h":{"iv":b64,"at":b64,"i":b64[,"c":true]}}`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};

use super::Unreadable;
use super::keys::{IV_LEN, Sealed, TAG_LEN};

/// A parsed envelope, every header checked; nothing is decrypted yet.
pub(super) struct Envelope {
    pub(super) ciphertext: Vec<u8>,
    pub(super) iv: [u8; IV_LEN],
    pub(super) tag: [u8; TAG_LEN],
    pub(super) key_id: Option<String>,
    pub(super) compressed: bool,
}

/// Exactly what `JSON.dump` gives for Rails' message: compact, keys in the order Rails inserts them (`iv`, `at`, `i`,
/// `c`). Strict base64 uses only `A-Za-z0-9+/=`, none of which JSON escapes, so formatting by hand is exact.
pub(super) fn format(sealed: &Sealed, key_id: &str, compressed: bool) -> String {
    let p = STANDARD.encode(&sealed.ciphertext);
    let iv = STANDARD.encode(sealed.iv);
    let at = STANDARD.encode(sealed.tag);
    let i = STANDARD.encode(key_id);
    let c = if compressed { r#","c":true"# } else { "" };
    format!(r#"{{"p":"{p}","h":{{"iv":"{iv}","at":"{at}","i":"{i}"{c}}}}}"#)
}

/// The JSON shape that makes a value an envelope rather than a plain token: an object with a string "p" and an
/// object "h".
fn envelope_json(stored: &str) -> Option<(String, Map<String, Value>)> {
    let Ok(Value::Object(mut message)) = serde_json::from_str::<Value>(stored) else { return None };
    match (message.remove("p"), message.remove("h")) {
        (Some(Value::String(payload)), Some(Value::Object(headers))) => Some((payload, headers)),
        _ => None,
    }
}

pub(super) fn is_envelope(stored: &str) -> bool {
    envelope_json(stored).is_some()
}

/// `None`: not an envelope, so a plain token. `Some(Err)`: an envelope no key could read.
pub(super) fn parse(stored: &str) -> Option<Result<Envelope, Unreadable>> {
    let (payload, headers) = envelope_json(stored)?;
    Some(decode(&payload, &headers))
}

fn decode(payload: &str, headers: &Map<String, Value>) -> Result<Envelope, Unreadable> {
    if headers.contains_key("k") {
        return Err(Unreadable::Malformed("envelope encryption (\"k\") is not used by Chatwoot"));
    }
    if let Some(encoding) = headers.get("e") {
        check_encoding(encoding)?;
    }
    let ciphertext = base64(payload, "the payload \"p\" is not strict base64")?;
    let iv = fixed(headers, "iv", "the iv is missing or not 12 bytes of strict base64")?;
    let tag = fixed(headers, "at", "the auth tag \"at\" is missing or not 16 bytes of strict base64")?;
    let key_id = headers.get("i").map(key_reference).transpose()?;
    let compressed = compressed(headers.get("c"))?;
    Ok(Envelope { ciphertext, iv, tag, key_id, compressed })
}

fn base64(value: &str, malformed: &'static str) -> Result<Vec<u8>, Unreadable> {
    // STANDARD is Ruby's strict_decode64: RFC 4648 alphabet, padding required, no whitespace.
    STANDARD.decode(value).map_err(|_| Unreadable::Malformed(malformed))
}

fn string_header(value: &Value, malformed: &'static str) -> Result<Vec<u8>, Unreadable> {
    match value {
        Value::String(encoded) => base64(encoded, malformed),
        _ => Err(Unreadable::Malformed(malformed)),
    }
}

fn fixed<const N: usize>(
    headers: &Map<String, Value>,
    name: &str,
    malformed: &'static str,
) -> Result<[u8; N], Unreadable> {
    let bytes = string_header(headers.get(name).ok_or(Unreadable::Malformed(malformed))?, malformed)?;
    bytes.try_into().map_err(|_| Unreadable::Malformed(malformed))
}

/// Rails' key ids are 4 hex chars; insisting on that keeps whatever a row holds out of our error messages.
fn key_reference(value: &Value) -> Result<String, Unreadable> {
    const MALFORMED: &str = "the key reference \"i\" is not a base64 4-hex key id";
    let id = string_header(value, MALFORMED)?;
    if id.len() == 4 && id.iter().all(u8::is_ascii_hexdigit) {
        String::from_utf8(id).map_err(|_| Unreadable::Malformed(MALFORMED))
    } else {
        Err(Unreadable::Malformed(MALFORMED))
    }
}

/// Rails writes `"c":true` (a JSON boolean, not base64) and tests it for truthiness; anything but a boolean or null is
/// not something Rails writes.
fn compressed(value: Option<&Value>) -> Result<bool, Unreadable> {
    match value {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(compressed)) => Ok(*compressed),
        Some(_) => Err(Unreadable::Malformed("the compression flag \"c\" is not a boolean")),
    }
}

/// Rails adds "e" only when the plaintext's Ruby encoding is not UTF-8, and on read merely relabels the decrypted bytes
/// with it (`force_encoding`). For US-ASCII and binary, bytes that are valid UTF-8 are the same text, so those are
/// decoded as usual (UTF-8 is still checked after decryption). Any other encoding (UTF-16, ISO-8859-1, Shift_JIS...)
/// would need transcoding, a guess we refuse: Chatwoot's model strings are UTF-8, so it never writes one.
fn check_encoding(value: &Value) -> Result<(), Unreadable> {
    const NOT_UTF8: &str = "the plaintext encoding \"e\" is not UTF-8, US-ASCII or binary";
    let name = string_header(value, NOT_UTF8)?;
    let same_bytes_as_utf8 = ["UTF-8", "US-ASCII", "ASCII-8BIT", "BINARY"];
    if same_bytes_as_utf8.iter().any(|known| known.as_bytes().eq_ignore_ascii_case(&name)) {
        Ok(())
    } else {
        Err(Unreadable::Malformed(NOT_UTF8))
    }
}
