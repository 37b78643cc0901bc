//! Key derivation as Rails does it (`ActiveSupport::KeyGenerator` + `ActiveRecord::Encryption::Key`), and the
//! AES-256-GCM seal/open with one derived key.

use std::fmt;

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Key, Nonce, Tag};
use rand::Rng;
use sha1::{Digest as _, Sha1};
use sha2::Sha256;

use super::Unreadable;
use crate::secret::Secret;

/// `ActiveRecord::Encryption::KeyGenerator` asks for 2**16 rounds.
const PBKDF2_ROUNDS: u32 = 1 << 16;
/// The AES-256-GCM key length, which is what Rails asks PBKDF2 for.
const KEY_LEN: usize = 32;
pub(super) const IV_LEN: usize = 12;
pub(super) const TAG_LEN: usize = 16;

/// The PBKDF2 digest. Chatwoot (`load_defaults 7.0`) derives with SHA1 on Rails 7.0 and 7.1 alike; SHA256 is what
/// `load_defaults 7.1`+ would switch new writes to, so it is kept for reading only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Digest {
    Sha1,
    Sha256,
}

/// One derived key and the id Rails would store for it.
pub(super) struct DerivedKey {
    digest: Digest,
    id: String,
    secret: [u8; KEY_LEN],
}

/// What sealing a payload gives: the three values an envelope carries.
pub(super) struct Sealed {
    pub(super) ciphertext: Vec<u8>,
    pub(super) iv: [u8; IV_LEN],
    pub(super) tag: [u8; TAG_LEN],
}

impl DerivedKey {
    fn derive(digest: Digest, primary_key: &Secret, salt: &Secret) -> Self {
        let password = primary_key.expose().as_bytes();
        let salt = salt.expose().as_bytes();
        let secret = match digest {
            Digest::Sha1 => pbkdf2::pbkdf2_hmac_array::<Sha1, KEY_LEN>(password, salt, PBKDF2_ROUNDS),
            Digest::Sha256 => pbkdf2::pbkdf2_hmac_array::<Sha256, KEY_LEN>(password, salt, PBKDF2_ROUNDS),
        };
        Self { digest, id: key_id(&secret), secret }
    }

    pub(super) fn id(&self) -> &str {
        &self.id
    }

    #[cfg(test)]
    pub(super) fn secret(&self) -> &[u8; KEY_LEN] {
        &self.secret
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&self.secret))
    }

    /// Rails' `Cipher::Aes256Gcm#encrypt`: a random IV per message, no associated data.
    pub(super) fn seal(&self, plaintext: Vec<u8>) -> Sealed {
        let mut iv = [0u8; IV_LEN];
        // ThreadRng is a CSPRNG reseeded from the OS, which is all a GCM nonce needs.
        rand::rng().fill(&mut iv);
        let mut ciphertext = plaintext;
        let tag = self
            .cipher()
            .encrypt_in_place_detached(Nonce::from_slice(&iv), b"", &mut ciphertext)
            .expect("AES-GCM refuses only plaintexts over 64 GiB, and a token is a String in memory");
        Sealed { ciphertext, iv, tag: tag.into() }
    }

    /// `None` when the tag does not verify: the wrong key, or a damaged value.
    fn open(&self, iv: &[u8; IV_LEN], tag: &[u8; TAG_LEN], ciphertext: &[u8]) -> Option<Vec<u8>> {
        let mut plaintext = ciphertext.to_vec();
        self.cipher()
            .decrypt_in_place_detached(Nonce::from_slice(iv), b"", &mut plaintext, Tag::from_slice(tag))
            .ok()
            .map(|()| plaintext)
    }
}

/// `ActiveRecord::Encryption::Key#id`: SHA1 over the derived key (whatever the PBKDF2 digest), first 4 hex chars.
fn key_id(secret: &[u8]) -> String {
    let mut id = hex::encode(Sha1::digest(secret));
    id.truncate(4);
    id
}

/// The keys derived from Chatwoot's `ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY` and `..._KEY_DERIVATION_SALT`.
pub struct Keys {
    /// SHA1: what Chatwoot writes, so we write with it and try it first.
    write: DerivedKey,
    /// SHA256: read only, for a Chatwoot that moved to `load_defaults 7.1`.
    read_also: DerivedKey,
}

impl Keys {
    /// Derives (65536 PBKDF2 rounds per digest: slow, do once per process).
    pub fn derive(primary_key: &Secret, key_derivation_salt: &Secret) -> Keys {
        Keys {
            write: DerivedKey::derive(Digest::Sha1, primary_key, key_derivation_salt),
            read_also: DerivedKey::derive(Digest::Sha256, primary_key, key_derivation_salt),
        }
    }

    /// The key id Rails stores in "i" for the write key (e.g. "059a" for ks1/SHA1).
    pub fn key_id(&self) -> &str {
        self.write.id()
    }

    pub(super) fn writer(&self) -> &DerivedKey {
        &self.write
    }

    #[cfg(test)]
    pub(super) fn by_digest(&self, digest: Digest) -> &DerivedKey {
        match digest {
            Digest::Sha1 => &self.write,
            Digest::Sha256 => &self.read_also,
        }
    }

    /// Rails' `KeyProvider#decryption_keys` then `Cipher#decrypt`: with a key reference only the keys with that id,
    /// otherwise every key in order.
    pub(super) fn open(
        &self,
        key_id: Option<&str>,
        iv: &[u8; IV_LEN],
        tag: &[u8; TAG_LEN],
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, Unreadable> {
        let keys = [&self.write, &self.read_also];
        if let Some(id) = key_id
            && !keys.iter().any(|key| key.id() == id)
        {
            return Err(Unreadable::UnknownKey { key_id: id.to_owned() });
        }
        let mut candidates = keys.into_iter().filter(|key| key_id.is_none_or(|id| key.id() == id));
        candidates.find_map(|key| key.open(iv, tag, ciphertext)).ok_or(Unreadable::Undecryptable)
    }
}

impl fmt::Debug for DerivedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DerivedKey").field("digest", &self.digest).field("id", &self.id).finish_non_exhaustive()
    }
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keys").field("write", &self.write).field("read_also", &self.read_also).finish()
    }
}
