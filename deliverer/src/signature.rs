//! Standard Webhooks signatures: `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`,
//! keyed by the secret's decoded bytes. Secrets are written `whsec_<base64>`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Prefix of a signing secret's text form.
pub const SECRET_PREFIX: &str = "whsec_";
/// Random bytes in a generated secret.
pub const GENERATED_SECRET_BYTES: usize = 32;
/// Minimum secret length, in bytes.
pub const MIN_SECRET_BYTES: usize = 24;
/// How far a webhook-timestamp may be from the receiver's clock, by default.
pub const DEFAULT_TOLERANCE_SECS: i64 = 5 * 60;

/// Reason a secret or a signed request was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    #[error("secret must be whsec_ followed by base64")]
    SecretFormat,
    #[error("secret has {0} bytes; at least {MIN_SECRET_BYTES} are required")]
    SecretTooShort(usize),
    #[error("header {0} is missing")]
    MissingHeader(&'static str),
    #[error("webhook-timestamp is not a number of seconds")]
    InvalidTimestamp,
    #[error("webhook-timestamp is {0} seconds away from now, more than the tolerance")]
    TimestampOutOfTolerance(i64),
    #[error("no v1 signature in webhook-signature matches")]
    NoMatchingSignature,
}

/// A signing secret, decoded.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Secret(..)")
    }
}

impl Secret {
    /// Parses a `whsec_<base64>` secret of at least [`MIN_SECRET_BYTES`] bytes.
    pub fn parse(text: &str) -> Result<Secret, SignatureError> {
        let encoded = text
            .strip_prefix(SECRET_PREFIX)
            .ok_or(SignatureError::SecretFormat)?;
        let bytes = STANDARD
            .decode(encoded)
            .map_err(|_| SignatureError::SecretFormat)?;
        if bytes.len() < MIN_SECRET_BYTES {
            return Err(SignatureError::SecretTooShort(bytes.len()));
        }
        Ok(Secret(bytes))
    }

    /// Parses a secret without the length check, for verifying published test vectors.
    pub fn parse_any_length(text: &str) -> Result<Secret, SignatureError> {
        let encoded = text.strip_prefix(SECRET_PREFIX).unwrap_or(text);
        STANDARD
            .decode(encoded)
            .map(Secret)
            .map_err(|_| SignatureError::SecretFormat)
    }

    /// Signs a message: returns the `v1,<base64>` signature.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        format!("v1,{}", STANDARD.encode(self.mac(id, timestamp, body)))
    }

    fn mac(&self, id: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
        // HMAC accepts keys of any length, so new_from_slice cannot fail.
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.finalize().into_bytes().to_vec()
    }

    /// Checks a request's signature headers against this secret and the receiver's clock.
    pub fn verify(
        &self,
        id: Option<&str>,
        timestamp: Option<&str>,
        signatures: Option<&str>,
        body: &[u8],
        now_secs: i64,
        tolerance_secs: i64,
    ) -> Result<(), SignatureError> {
        let id = id.ok_or(SignatureError::MissingHeader("webhook-id"))?;
        let timestamp: i64 = timestamp
            .ok_or(SignatureError::MissingHeader("webhook-timestamp"))?
            .trim()
            .parse()
            .map_err(|_| SignatureError::InvalidTimestamp)?;
        let signatures = signatures.ok_or(SignatureError::MissingHeader("webhook-signature"))?;
        let skew = now_secs.saturating_sub(timestamp);
        if skew.saturating_abs() > tolerance_secs {
            return Err(SignatureError::TimestampOutOfTolerance(skew));
        }

        for candidate in signatures.split(' ') {
            let Some(encoded) = candidate.strip_prefix("v1,") else {
                continue;
            };
            let Ok(received) = STANDARD.decode(encoded) else {
                continue;
            };
            let mut mac =
                HmacSha256::new_from_slice(&self.0).expect("HMAC takes keys of any length");
            mac.update(format!("{id}.{timestamp}.").as_bytes());
            mac.update(body);
            // verify_slice compares in constant time and rejects truncated tags.
            if mac.verify_slice(&received).is_ok() {
                return Ok(());
            }
        }
        Err(SignatureError::NoMatchingSignature)
    }
}

/// Generates a new secret of [`GENERATED_SECRET_BYTES`] random bytes, in `whsec_` form.
pub fn generate_secret() -> String {
    let mut bytes = [0u8; GENERATED_SECRET_BYTES];
    rand::rng().fill_bytes(&mut bytes);
    format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    const VECTOR_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const VECTOR_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const VECTOR_TIMESTAMP: i64 = 1614265330;
    const VECTOR_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const VECTOR_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn signs_published_test_vector() {
        let secret = Secret::parse(VECTOR_SECRET).unwrap();
        assert_eq!(
            secret.sign(VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY),
            VECTOR_SIGNATURE
        );
    }

    #[test]
    fn verifies_published_test_vector() {
        let secret = Secret::parse(VECTOR_SECRET).unwrap();
        let verify = |signatures: &str, now: i64| {
            secret.verify(
                Some(VECTOR_ID),
                Some(&VECTOR_TIMESTAMP.to_string()),
                Some(signatures),
                VECTOR_BODY,
                now,
                DEFAULT_TOLERANCE_SECS,
            )
        };
        assert_eq!(verify(VECTOR_SIGNATURE, VECTOR_TIMESTAMP), Ok(()));
        assert_eq!(
            verify(&format!("v1,bogus {VECTOR_SIGNATURE}"), VECTOR_TIMESTAMP),
            Ok(())
        );
        assert_eq!(
            verify("v1,", VECTOR_TIMESTAMP),
            Err(SignatureError::NoMatchingSignature)
        );
        assert_eq!(
            verify(&VECTOR_SIGNATURE[..20], VECTOR_TIMESTAMP),
            Err(SignatureError::NoMatchingSignature)
        );
        assert!(matches!(
            verify(VECTOR_SIGNATURE, VECTOR_TIMESTAMP + 3600),
            Err(SignatureError::TimestampOutOfTolerance(_))
        ));
    }

    #[test]
    fn secrets_are_checked() {
        assert_eq!(
            Secret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap_err(),
            SignatureError::SecretFormat
        );
        assert_eq!(
            Secret::parse("whsec_AAAA").unwrap_err(),
            SignatureError::SecretTooShort(3)
        );
        let generated = generate_secret();
        assert!(Secret::parse(&generated).is_ok());
        assert_ne!(generated, generate_secret());
    }
}
