use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::secret::Secret;

/// The `X-Signature-256` value: `sha256=` and the lowercase hex HMAC-SHA256 of `body` keyed by the
/// secret, as GitHub-style receivers verify it.
pub fn signature(secret: &Secret, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
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
}
