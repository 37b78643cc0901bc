//! How webhook deliveries are signed: the GitHub-style `X-Signature-256` and the Standard Webhooks
//! `webhook-signature`. Apart from `webhooks` so the configuration can check a secret without it.

use base64::{
    Engine as _, alphabet,
    engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig, general_purpose::STANDARD},
};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::secret::Secret;

/// The prefix of a Standard Webhooks secret: `whsec_<base64 key>`.
pub const STANDARD_SECRET_PREFIX: &str = "whsec_";

/// Standard Webhooks secrets are written with and without padding; both mean the same key.
const SECRET_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// The `X-Signature-256` value: `sha256=` and the lowercase hex HMAC-SHA256 of `body` keyed by the
/// secret's bytes as written (a `whsec_` prefix included), as GitHub-style receivers verify it.
pub fn signature(secret: &Secret, body: &[u8]) -> String {
    format!("sha256={}", hex::encode(hmac_sha256(secret.expose().as_bytes(), &[body])))
}

/// The HMAC key of the Standard Webhooks signature: for `whsec_<base64>` the decoded bytes (the
/// spec's format, so receivers can use its libraries with the same secret), for any other secret
/// its bytes as written. `Err` for `whsec_` followed by something that is not base64; the
/// configuration refuses such a `WEBHOOK_SECRET`.
pub fn standard_key(secret: &Secret) -> Result<Vec<u8>, base64::DecodeError> {
    match secret.expose().strip_prefix(STANDARD_SECRET_PREFIX) {
        Some(encoded) => SECRET_BASE64.decode(encoded),
        None => Ok(secret.expose().as_bytes().to_vec()),
    }
}

/// The `webhook-signature` value of the Standard Webhooks specification: `v1,` and the base64
/// HMAC-SHA256 of `{id}.{timestamp}.{body}`. Signing the id and the send time with the body lets
/// a receiver reject replays (an old timestamp, or an id it has seen).
pub fn standard_signature(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let timestamp = timestamp.to_string();
    let mac = hmac_sha256(key, &[id.as_bytes(), b".", timestamp.as_bytes(), b".", body]);
    format!("v1,{}", STANDARD.encode(mac))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhooks_signature_matches_openssl() {
        // printf '%s' '{"event":"token.healthy","page_id":"1001"}' | openssl dgst -sha256 -hmac 'whsec_test'
        assert_eq!(
            signature(&Secret::new("whsec_test"), br#"{"event":"token.healthy","page_id":"1001"}"#),
            "sha256=f49546a59e34f9b163a56c6e0f7828b647971b2ae5c47e13ee7889b93d15479b"
        );
        // printf '' | openssl dgst -sha256 -hmac 'k'
        assert_eq!(
            signature(&Secret::new("k"), b""),
            "sha256=8bb990c40a7d61cb97597a942125025be50ac8beb74436e3735b98893a7f6620"
        );
    }

    #[test]
    fn webhooks_standard_signature_matches_the_spec_example() {
        // The example of the Standard Webhooks specification and its reference libraries.
        let secret = Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let key = standard_key(&secret).expect("base64 key");
        assert_eq!(key.len(), 24);
        assert_eq!(
            standard_signature(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, br#"{"test": 2432232314}"#),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        // Unpadded secrets decode to the same key.
        assert_eq!(standard_key(&Secret::new("whsec_dGVzdA")).expect("unpadded"), b"test");
        assert_eq!(standard_key(&Secret::new("whsec_dGVzdA==")).expect("padded"), b"test");
    }

    #[test]
    fn webhooks_standard_key_of_other_secrets_is_their_bytes() {
        assert_eq!(standard_key(&Secret::new("s3cret")).expect("raw"), b"s3cret");
        assert!(standard_key(&Secret::new("whsec_not base64!")).is_err());
    }
}
