//! Reading and writing Chatwoot's encrypted token columns.
//!
//! When `ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY`, `..._DETERMINISTIC_KEY` and `..._KEY_DERIVATION_SALT` are all set,
//! Chatwoot declares `encrypts :page_access_token` / `encrypts :user_access_token` on `Channel::FacebookPage`, so
//! those columns hold Rails Active Record Encryption envelopes instead of tokens. To read a token and to store a
//! refreshed one that Chatwoot can still read, we must do what Rails 7.0.8.7 does with Chatwoot's settings
//! (`load_defaults 7.0`, `store_key_references = true`, `support_unencrypted_data = true`, non-deterministic):
//!
//! - key: PBKDF2-HMAC-SHA1 (SHA1 despite `load_defaults 7.0`, Rails bug #42922), 65536 rounds, 32 bytes,
//!   password = primary key, salt = key derivation salt; the deterministic key is never used for these columns;
//!   reads also accept a PBKDF2-HMAC-SHA256 key, which a Chatwoot on `load_defaults 7.1` would write with;
//! - cipher: AES-256-GCM, random 12-byte IV, 16-byte tag, no associated data;
//! - plaintexts over 140 bytes are zlib-deflated first and flagged `"c":true`;
//! - `"i"` names the key: the first 4 hex chars of SHA1(derived key);
//! - the column value is compact JSON with strict base64: `{"p":…,"h":{"iv":…,"at":…,"i":…[,"c":true]}}`.
//!
//! The facts come from the Rails sources at tag `v7.0.8.7` (`activerecord/lib/active_record/encryption/`: `encryptor`,
//! `cipher/aes256_gcm`, `key`, `key_generator`, `key_provider`, `message_serializer`, `configurable`) and from booting
//! real Rails with Chatwoot's configuration: `tests/fixtures/rails_vectors.json` holds what it wrote and read.
//!
//! One deliberate difference: Rails hands back an envelope it cannot decrypt as if it were the token
//! (`support_unencrypted_data`). We return an error instead, because sending an envelope to the Graph API as a token,
//! or "refreshing" it, helps no one; only values that are not envelopes at all are read as plain tokens.

mod envelope;
mod keys;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::io::Write as _;
use std::sync::{Arc, Mutex, OnceLock};

use flate2::{Decompress, FlushDecompress, Status};
use sha2::{Digest as _, Sha256};

pub use keys::Keys;

use crate::secret::Secret;

/// `Encryptor::THRESHOLD_TO_JUSTIFY_COMPRESSION`: strictly longer plaintexts are compressed.
const COMPRESS_OVER: usize = 140;
/// A token inflates to a few hundred bytes; a row that inflates beyond this is hostile or broken.
const INFLATE_LIMIT: usize = 64 * 1024;

/// Why a stored column value could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unreadable {
    /// an envelope, but ACTIVE_RECORD_ENCRYPTION_* are unset here
    #[error(
        "the stored token is encrypted by Chatwoot (Active Record Encryption), but ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY, \
         ACTIVE_RECORD_ENCRYPTION_DETERMINISTIC_KEY and ACTIVE_RECORD_ENCRYPTION_KEY_DERIVATION_SALT are not set here: \
         copy them from Chatwoot's .env"
    )]
    KeysUnset,
    /// the envelope names a key id ("i") none of ours has: the keys differ from Chatwoot's
    #[error(
        "the stored token was encrypted with key id {key_id}, which our ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY and \
         ACTIVE_RECORD_ENCRYPTION_KEY_DERIVATION_SALT do not give: they differ from Chatwoot's; copy \
         ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY, ACTIVE_RECORD_ENCRYPTION_DETERMINISTIC_KEY and \
         ACTIVE_RECORD_ENCRYPTION_KEY_DERIVATION_SALT from Chatwoot's .env"
    )]
    UnknownKey { key_id: String },
    /// decryption failed with every candidate key (wrong keys without "i", or a damaged value)
    #[error(
        "the stored token could not be decrypted with our keys: either ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY and \
         ACTIVE_RECORD_ENCRYPTION_KEY_DERIVATION_SALT differ from Chatwoot's (copy them from Chatwoot's .env), or the \
         stored value is damaged"
    )]
    Undecryptable,
    /// an envelope that is malformed: bad base64, iv not 12 bytes, tag not 16 bytes, bad zlib, not UTF-8, "k" (envelope
    /// encryption, not used by Chatwoot)...
    #[error("the stored token is a malformed Active Record Encryption envelope: {0}")]
    Malformed(&'static str),
}

/// Reads and writes a token column.
#[derive(Clone)]
pub struct Codec {
    keys: Option<Arc<Keys>>,
}

impl Codec {
    /// For a Chatwoot without encryption configured: its columns hold plain tokens.
    pub fn plaintext() -> Codec {
        Codec { keys: None }
    }

    pub fn with_keys(keys: Keys) -> Codec {
        Codec { keys: Some(Arc::new(keys)) }
    }

    /// Memoized by a SHA-256 of (primary_key, salt) in a process-wide map, so the many pipelines a test process builds
    /// derive once. The first call for a pair blocks while deriving: make it at startup, not on an async task.
    pub fn for_keys(primary_key: &Secret, key_derivation_salt: &Secret) -> Codec {
        static DERIVED: OnceLock<Mutex<HashMap<[u8; 32], Arc<Keys>>>> = OnceLock::new();
        let fingerprint = fingerprint(primary_key, key_derivation_salt);
        // Derive under the lock, so that callers racing on the same keys derive once. A derivation that panicked
        // inserted nothing, so a poisoned map is still sound.
        let mut derived = DERIVED.get_or_init(Mutex::default).lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let keys = derived
            .entry(fingerprint)
            .or_insert_with(|| Arc::new(Keys::derive(primary_key, key_derivation_salt)))
            .clone();
        Codec { keys: Some(keys) }
    }

    pub fn encrypts(&self) -> bool {
        self.keys.is_some()
    }

    /// A stored column value -> the token. Not an envelope (anything that is not a JSON object with a string "p" and
    /// an object "h") -> the value as is (Chatwoot's support_unencrypted_data). An envelope -> decrypted, or an error.
    pub fn read(&self, stored: &str) -> Result<Secret, Unreadable> {
        let Some(envelope) = envelope::parse(stored) else { return Ok(Secret::new(stored)) };
        let envelope = envelope?;
        let keys = self.keys.as_deref().ok_or(Unreadable::KeysUnset)?;
        let payload = keys.open(envelope.key_id.as_deref(), &envelope.iv, &envelope.tag, &envelope.ciphertext)?;
        let plaintext = if envelope.compressed { inflate(&payload)? } else { payload };
        String::from_utf8(plaintext)
            .map(Secret::new)
            .map_err(|_| Unreadable::Malformed("the decrypted token is not UTF-8"))
    }

    /// The value to store: with keys, a fresh envelope exactly as Rails writes it (fresh random IV each call, "i"
    /// always present, compress when > 140 bytes); without keys the token itself.
    pub fn write(&self, token: &Secret) -> Secret {
        let Some(keys) = self.keys.as_deref() else { return token.clone() };
        let plaintext = token.expose().as_bytes();
        let compressed = plaintext.len() > COMPRESS_OVER;
        let payload = if compressed { deflate(plaintext) } else { plaintext.to_vec() };
        let key = keys.writer();
        Secret::new(envelope::format(&key.seal(payload), key.id(), compressed))
    }
}

/// Whether a stored value is an Active Record Encryption envelope rather than a plain token.
pub fn is_envelope(stored: &str) -> bool {
    envelope::is_envelope(stored)
}

impl fmt::Debug for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Codec").field("keys", &self.keys).finish()
    }
}

/// Length-prefixed so that no (primary key, salt) pair can collide with another split of the same bytes.
fn fingerprint(primary_key: &Secret, key_derivation_salt: &Secret) -> [u8; 32] {
    let primary_key = primary_key.expose().as_bytes();
    let mut hasher = Sha256::new();
    hasher.update((primary_key.len() as u64).to_be_bytes());
    hasher.update(primary_key);
    hasher.update(key_derivation_salt.expose().as_bytes());
    hasher.finalize().into()
}

/// `Zlib::Deflate.deflate` at its default level. Our bytes may differ from Ruby's zlib; only the inflate must agree.
fn deflate(plaintext: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(plaintext).and_then(|()| encoder.finish()).expect("deflating into a Vec cannot fail")
}

/// `Zlib::Inflate.inflate`, bounded: a complete zlib stream of at most `INFLATE_LIMIT` bytes.
fn inflate(compressed: &[u8]) -> Result<Vec<u8>, Unreadable> {
    let mut inflated = Vec::with_capacity(INFLATE_LIMIT + 1);
    let status = Decompress::new(true)
        .decompress_vec(compressed, &mut inflated, FlushDecompress::Finish)
        .map_err(|_| Unreadable::Malformed("the compressed payload is not a zlib stream"))?;
    match status {
        _ if inflated.len() > INFLATE_LIMIT => {
            Err(Unreadable::Malformed("the compressed payload inflates beyond 64 KiB"))
        }
        Status::StreamEnd => Ok(inflated),
        Status::Ok | Status::BufError => {
            Err(Unreadable::Malformed("the compressed payload is a truncated zlib stream"))
        }
    }
}
