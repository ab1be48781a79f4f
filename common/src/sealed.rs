//! Signing secrets at rest, sealed with AES-256-GCM under a key the operator supplies and
//! bound to their endpoint id. A reader of the subscriptions topic without the key cannot sign
//! as the endpoint's owner, and a sealed value copied to another endpoint does not open.
//!
//! A sealed value reads `sealed:v1:<key id>:<base64 of nonce and ciphertext>`. The key id is
//! derived from the key, so a value sealed under another key is reported as such. Values in
//! plain `whsec_`/`whsk_` form are accepted as they are, for endpoints added before sealing was
//! configured.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Prefix of a sealed value.
pub const SEALED_PREFIX: &str = "sealed:v1:";
/// Length of a sealing key, in bytes.
pub const KEY_BYTES: usize = 32;
const NONCE_BYTES: usize = 12;

/// Reason a key could not be loaded or a value could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    #[error("the secret key must be {KEY_BYTES} bytes in base64 (generate one with `openssl rand -base64 32`)")]
    InvalidKey,
    #[error("the secret is sealed under key {key_id}, but no secret key is configured; set AURORA_SECRET_KEY or --secret-key-file")]
    NoKey { key_id: String },
    #[error("the secret is sealed under key {found}, but the configured key is {configured}")]
    WrongKey { found: String, configured: String },
    #[error("the sealed secret is corrupt or was sealed for another endpoint")]
    Corrupt,
}

/// An operator's sealing key.
#[derive(Clone)]
pub struct SealKey {
    cipher: Aes256Gcm,
    key_id: String,
}

impl std::fmt::Debug for SealKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "SealKey({})", self.key_id)
    }
}

impl SealKey {
    /// Reads a key written as base64 of [`KEY_BYTES`] bytes; surrounding whitespace is ignored.
    pub fn from_base64(text: &str) -> Result<SealKey, SealError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| SealError::InvalidKey)?;
        if bytes.len() != KEY_BYTES {
            return Err(SealError::InvalidKey);
        }
        let cipher = Aes256Gcm::new_from_slice(&bytes).map_err(|_| SealError::InvalidKey)?;
        let digest = Sha256::new()
            .chain_update(b"aurora seal key id\0")
            .chain_update(&bytes)
            .finalize();
        Ok(SealKey {
            cipher,
            key_id: hex::encode(&digest[..4]),
        })
    }

    /// Generates a new key, in base64.
    pub fn generate() -> String {
        let mut bytes = [0u8; KEY_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        STANDARD.encode(bytes)
    }

    /// Short public identifier of the key, stored with every value it seals.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Seals `secret` for the endpoint `endpoint_id`.
    pub fn seal(&self, endpoint_id: &str, secret: &str) -> String {
        let mut nonce = [0u8; NONCE_BYTES];
        rand::rng().fill_bytes(&mut nonce);
        let payload = Payload {
            msg: secret.as_bytes(),
            aad: endpoint_id.as_bytes(),
        };
        // Encryption fails only for inputs beyond AES-GCM's limit of about 64 GiB.
        let ciphertext = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), payload)
            .expect("a secret is far below the AES-GCM size limit");
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&ciphertext);
        format!("{SEALED_PREFIX}{}:{}", self.key_id, STANDARD.encode(sealed))
    }

    fn open_sealed(
        &self,
        endpoint_id: &str,
        key_id: &str,
        encoded: &str,
    ) -> Result<String, SealError> {
        if key_id != self.key_id {
            return Err(SealError::WrongKey {
                found: key_id.to_string(),
                configured: self.key_id.clone(),
            });
        }
        let sealed = STANDARD.decode(encoded).map_err(|_| SealError::Corrupt)?;
        if sealed.len() < NONCE_BYTES {
            return Err(SealError::Corrupt);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_BYTES);
        let payload = Payload {
            msg: ciphertext,
            aad: endpoint_id.as_bytes(),
        };
        let plain = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), payload)
            .map_err(|_| SealError::Corrupt)?;
        String::from_utf8(plain).map_err(|_| SealError::Corrupt)
    }
}

/// Returns whether a stored value is sealed.
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(SEALED_PREFIX)
}

/// Seals `secret` when a key is configured; returns it unchanged otherwise.
pub fn seal_if_configured(key: Option<&SealKey>, endpoint_id: &str, secret: &str) -> String {
    match key {
        Some(key) => key.seal(endpoint_id, secret),
        None => secret.to_string(),
    }
}

/// Returns the plain secret of a stored value: sealed values are opened with `key`, and plain
/// ones are returned unchanged.
pub fn open(key: Option<&SealKey>, endpoint_id: &str, stored: &str) -> Result<String, SealError> {
    let Some(rest) = stored.strip_prefix(SEALED_PREFIX) else {
        return Ok(stored.to_string());
    };
    let (key_id, encoded) = rest.split_once(':').ok_or(SealError::Corrupt)?;
    match key {
        Some(key) => key.open_sealed(endpoint_id, key_id, encoded),
        None => Err(SealError::NoKey {
            key_id: key_id.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn key() -> SealKey {
        SealKey::from_base64(&SealKey::generate()).unwrap()
    }

    #[test]
    fn sealed_secret_opens_for_its_endpoint() {
        let key = key();
        let sealed = key.seal("ep_1", SECRET);
        assert!(is_sealed(&sealed));
        assert!(!sealed.contains("MfKQ9r8"), "{sealed}");
        assert_eq!(open(Some(&key), "ep_1", &sealed).unwrap(), SECRET);
    }

    #[test]
    fn sealing_twice_differs() {
        let key = key();
        assert_ne!(key.seal("ep_1", SECRET), key.seal("ep_1", SECRET));
    }

    #[test]
    fn sealed_secret_rejects_other_endpoint() {
        let key = key();
        let sealed = key.seal("ep_1", SECRET);
        assert_eq!(open(Some(&key), "ep_2", &sealed), Err(SealError::Corrupt));
    }

    #[test]
    fn sealed_secret_needs_its_key() {
        let first = key();
        let sealed = first.seal("ep_1", SECRET);
        assert!(matches!(
            open(None, "ep_1", &sealed),
            Err(SealError::NoKey { .. })
        ));
        assert!(matches!(
            open(Some(&key()), "ep_1", &sealed),
            Err(SealError::WrongKey { .. })
        ));
    }

    #[test]
    fn tampered_secret_is_corrupt() {
        let key = key();
        let sealed = key.seal("ep_1", SECRET);
        let (head, tail) = sealed.split_at(sealed.len() - 6);
        let flipped = if tail.starts_with('A') { "B" } else { "A" };
        let tampered = format!("{head}{flipped}{}", &tail[1..]);
        assert_eq!(open(Some(&key), "ep_1", &tampered), Err(SealError::Corrupt));
    }

    #[test]
    fn plain_secret_passes_through() {
        assert_eq!(open(None, "ep_1", SECRET).unwrap(), SECRET);
        assert_eq!(open(Some(&key()), "ep_1", SECRET).unwrap(), SECRET);
    }

    #[test]
    fn keys_are_checked() {
        assert_eq!(
            SealKey::from_base64("c2hvcnQ=").unwrap_err(),
            SealError::InvalidKey
        );
        assert_eq!(
            SealKey::from_base64("not base64!").unwrap_err(),
            SealError::InvalidKey
        );
    }
}
