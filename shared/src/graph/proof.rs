use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::secret::Secret;

/// Lowercase hex HMAC-SHA256 of the access token keyed by the app secret, as Graph expects in
/// `appsecret_proof`.
pub fn appsecret_proof(app_secret: &Secret, access_token: &str) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(app_secret.expose().as_bytes()) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(access_token.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_a_known_vector() {
        // echo -n "token" | openssl dgst -sha256 -hmac "secret"
        assert_eq!(
            appsecret_proof(&Secret::new("secret"), "token"),
            "e941110e3d2bfe82621f0e3e1434730d7305d106c5f68c87165d0b27a4611a4a"
        );
    }
}
