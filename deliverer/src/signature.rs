//! Standard Webhooks signatures of `"{id}.{timestamp}.{body}"`: symmetric
//! `v1,<base64 HMAC-SHA256>` keyed by a `whsec_<base64>` secret, and asymmetric
//! `v1a,<base64 ed25519 signature>` made with a `whsk_<base64>` secret key and checked with its
//! `whpk_<base64>` public key.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ed25519_dalek::{Signer, Verifier as _};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Prefix of a signing secret's text form.
pub const SECRET_PREFIX: &str = "whsec_";
/// Prefix of an ed25519 secret key's text form: base64 of the 32-byte seed.
pub const SECRET_KEY_PREFIX: &str = "whsk_";
/// Prefix of an ed25519 public key's text form: base64 of the 32-byte key.
pub const PUBLIC_KEY_PREFIX: &str = "whpk_";
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
    #[error("key must be {0} followed by the base64 of a 32-byte ed25519 key")]
    KeyFormat(&'static str),
    #[error("signing key must start with whsec_ (HMAC) or whsk_ (ed25519)")]
    UnknownKind,
    #[error("secret has {0} bytes; at least {MIN_SECRET_BYTES} are required")]
    SecretTooShort(usize),
    #[error("header {0} is missing")]
    MissingHeader(&'static str),
    #[error("webhook-timestamp is not a number of seconds")]
    InvalidTimestamp,
    #[error("webhook-timestamp is {0} seconds away from now, more than the tolerance")]
    TimestampOutOfTolerance(i64),
    #[error("no signature in webhook-signature matches")]
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
        let (id, timestamp, signatures) =
            check_headers(id, timestamp, signatures, now_secs, tolerance_secs)?;
        for encoded in candidates(signatures, "v1,") {
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

/// An ed25519 secret key.
#[derive(Clone)]
pub struct KeyPair(ed25519_dalek::SigningKey);

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("KeyPair(..)")
    }
}

impl KeyPair {
    /// Parses a `whsk_<base64>` secret key: the 32-byte seed, or the 64-byte seed and public
    /// key, whose public half must match the seed.
    pub fn parse(text: &str) -> Result<KeyPair, SignatureError> {
        let format = SignatureError::KeyFormat(SECRET_KEY_PREFIX);
        let encoded = text.strip_prefix(SECRET_KEY_PREFIX).ok_or(format.clone())?;
        let bytes = STANDARD.decode(encoded).map_err(|_| format.clone())?;
        let seed: [u8; 32] = bytes
            .get(..32)
            .and_then(|seed| seed.try_into().ok())
            .ok_or(format.clone())?;
        let key = ed25519_dalek::SigningKey::from_bytes(&seed);
        match bytes.len() {
            32 => Ok(KeyPair(key)),
            64 if bytes[32..] == key.verifying_key().to_bytes() => Ok(KeyPair(key)),
            _ => Err(format),
        }
    }

    /// Returns the public key in `whpk_<base64>` form.
    pub fn public_key(&self) -> String {
        format!(
            "{PUBLIC_KEY_PREFIX}{}",
            STANDARD.encode(self.0.verifying_key().to_bytes())
        )
    }

    /// Signs a message: returns the `v1a,<base64>` signature.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut message = Vec::with_capacity(id.len() + body.len() + 24);
        message.extend_from_slice(format!("{id}.{timestamp}.").as_bytes());
        message.extend_from_slice(body);
        format!("v1a,{}", STANDARD.encode(self.sign_message(&message)))
    }

    fn sign_message(&self, message: &[u8]) -> [u8; 64] {
        self.0.sign(message).to_bytes()
    }
}

/// An ed25519 public key, for receivers.
#[derive(Debug, Clone)]
pub struct PublicKey(ed25519_dalek::VerifyingKey);

impl PublicKey {
    /// Parses a `whpk_<base64>` public key.
    pub fn parse(text: &str) -> Result<PublicKey, SignatureError> {
        let format = SignatureError::KeyFormat(PUBLIC_KEY_PREFIX);
        let encoded = text.strip_prefix(PUBLIC_KEY_PREFIX).ok_or(format.clone())?;
        let bytes: [u8; 32] = STANDARD
            .decode(encoded)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or(format.clone())?;
        ed25519_dalek::VerifyingKey::from_bytes(&bytes)
            .map(PublicKey)
            .map_err(|_| format)
    }

    /// Checks a request's `v1a` signatures against this key and the receiver's clock.
    pub fn verify(
        &self,
        id: Option<&str>,
        timestamp: Option<&str>,
        signatures: Option<&str>,
        body: &[u8],
        now_secs: i64,
        tolerance_secs: i64,
    ) -> Result<(), SignatureError> {
        let (id, timestamp, signatures) =
            check_headers(id, timestamp, signatures, now_secs, tolerance_secs)?;
        let mut message = format!("{id}.{timestamp}.").into_bytes();
        message.extend_from_slice(body);
        for encoded in candidates(signatures, "v1a,") {
            let Some(signature) = STANDARD
                .decode(encoded)
                .ok()
                .and_then(|bytes| ed25519_dalek::Signature::from_slice(&bytes).ok())
            else {
                continue;
            };
            if self.0.verify(&message, &signature).is_ok() {
                return Ok(());
            }
        }
        Err(SignatureError::NoMatchingSignature)
    }
}

/// A key that signs deliveries: an HMAC secret or an ed25519 secret key.
#[derive(Debug, Clone)]
pub enum SigningKey {
    Hmac(Secret),
    Ed25519(KeyPair),
}

impl SigningKey {
    /// Parses a `whsec_` secret or a `whsk_` secret key.
    pub fn parse(text: &str) -> Result<SigningKey, SignatureError> {
        if text.starts_with(SECRET_PREFIX) {
            Secret::parse(text).map(SigningKey::Hmac)
        } else if text.starts_with(SECRET_KEY_PREFIX) {
            KeyPair::parse(text).map(SigningKey::Ed25519)
        } else {
            Err(SignatureError::UnknownKind)
        }
    }

    /// Signs a message: returns a `v1,` or `v1a,` signature.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        match self {
            SigningKey::Hmac(secret) => secret.sign(id, timestamp, body),
            SigningKey::Ed25519(key) => key.sign(id, timestamp, body),
        }
    }

    /// Returns the `whpk_` public key of an ed25519 key; None for an HMAC secret.
    pub fn public_key(&self) -> Option<String> {
        match self {
            SigningKey::Hmac(_) => None,
            SigningKey::Ed25519(key) => Some(key.public_key()),
        }
    }
}

/// A key that checks signatures: an HMAC secret, or an ed25519 public key.
#[derive(Debug, Clone)]
pub enum Verifier {
    Hmac(Secret),
    Ed25519(PublicKey),
}

impl Verifier {
    /// Parses a `whpk_` public key, or else a `whsec_` secret.
    pub fn parse(text: &str) -> Result<Verifier, SignatureError> {
        if text.starts_with(PUBLIC_KEY_PREFIX) {
            PublicKey::parse(text).map(Verifier::Ed25519)
        } else {
            Secret::parse(text).map(Verifier::Hmac)
        }
    }

    /// Checks a request's signature headers with this key and the receiver's clock.
    pub fn verify(
        &self,
        id: Option<&str>,
        timestamp: Option<&str>,
        signatures: Option<&str>,
        body: &[u8],
        now_secs: i64,
        tolerance_secs: i64,
    ) -> Result<(), SignatureError> {
        match self {
            Verifier::Hmac(secret) => {
                secret.verify(id, timestamp, signatures, body, now_secs, tolerance_secs)
            }
            Verifier::Ed25519(key) => {
                key.verify(id, timestamp, signatures, body, now_secs, tolerance_secs)
            }
        }
    }
}

/// Checks the id, timestamp and signature headers are present and the timestamp is within
/// the tolerance; returns them.
fn check_headers<'a>(
    id: Option<&'a str>,
    timestamp: Option<&str>,
    signatures: Option<&'a str>,
    now_secs: i64,
    tolerance_secs: i64,
) -> Result<(&'a str, i64, &'a str), SignatureError> {
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
    Ok((id, timestamp, signatures))
}

/// Returns the base64 parts of the space-separated signatures that carry `version`, such as
/// `v1,`.
fn candidates<'a>(signatures: &'a str, version: &'a str) -> impl Iterator<Item = &'a str> {
    signatures
        .split(' ')
        .filter_map(move |candidate| candidate.strip_prefix(version))
}

/// Generates a new secret of [`GENERATED_SECRET_BYTES`] random bytes, in `whsec_` form.
pub fn generate_secret() -> String {
    let mut bytes = [0u8; GENERATED_SECRET_BYTES];
    rand::rng().fill_bytes(&mut bytes);
    format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes))
}

/// Generates a new ed25519 secret key, in `whsk_` form.
pub fn generate_key_pair() -> String {
    let mut seed = [0u8; 32];
    rand::rng().fill_bytes(&mut seed);
    format!("{SECRET_KEY_PREFIX}{}", STANDARD.encode(seed))
}

/// The Standard Webhooks headers of a received request; a header that is missing or not
/// text is `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookHeaders {
    pub id: Option<String>,
    pub timestamp: Option<String>,
    pub signatures: Option<String>,
}

impl WebhookHeaders {
    /// Reads `webhook-id`, `webhook-timestamp` and `webhook-signature`.
    pub fn read(headers: &hyper::HeaderMap) -> Self {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::to_string)
        };
        WebhookHeaders {
            id: header("webhook-id"),
            timestamp: header("webhook-timestamp"),
            signatures: header("webhook-signature"),
        }
    }
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

    /// RFC 8032 section 7.1, test 1: the key pair and the signature of the empty message.
    const RFC8032_SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
    const RFC8032_PUBLIC: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
    const RFC8032_SIGNATURE: &str = "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b";

    fn rfc8032_key() -> KeyPair {
        let seed = hex_bytes(RFC8032_SEED);
        KeyPair::parse(&format!("{SECRET_KEY_PREFIX}{}", STANDARD.encode(seed))).unwrap()
    }

    fn hex_bytes(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|at| u8::from_str_radix(&text[at..at + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn ed25519_matches_rfc8032_vector() {
        let key = rfc8032_key();
        assert_eq!(
            key.public_key(),
            format!(
                "{PUBLIC_KEY_PREFIX}{}",
                STANDARD.encode(hex_bytes(RFC8032_PUBLIC))
            )
        );
        assert_eq!(key.sign_message(b"").to_vec(), hex_bytes(RFC8032_SIGNATURE));
    }

    #[test]
    fn ed25519_signature_verifies_with_public_key() {
        let key = KeyPair::parse(&generate_key_pair()).unwrap();
        let public = PublicKey::parse(&key.public_key()).unwrap();
        let signature = key.sign(VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY);
        assert!(signature.starts_with("v1a,"));
        let verify = |signatures: &str, body: &[u8]| {
            public.verify(
                Some(VECTOR_ID),
                Some(&VECTOR_TIMESTAMP.to_string()),
                Some(signatures),
                body,
                VECTOR_TIMESTAMP,
                DEFAULT_TOLERANCE_SECS,
            )
        };
        assert_eq!(verify(&signature, VECTOR_BODY), Ok(()));
        assert_eq!(
            verify(&format!("{VECTOR_SIGNATURE} {signature}"), VECTOR_BODY),
            Ok(())
        );
        assert_eq!(
            verify(&signature, b"{}"),
            Err(SignatureError::NoMatchingSignature)
        );
        let other = KeyPair::parse(&generate_key_pair()).unwrap();
        assert_eq!(
            verify(
                &other.sign(VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY),
                VECTOR_BODY
            ),
            Err(SignatureError::NoMatchingSignature)
        );
    }

    #[test]
    fn secret_key_with_public_half_must_match() {
        let key = rfc8032_key();
        let mut bytes = hex_bytes(RFC8032_SEED);
        bytes.extend(hex_bytes(RFC8032_PUBLIC));
        let full = format!("{SECRET_KEY_PREFIX}{}", STANDARD.encode(&bytes));
        assert_eq!(
            KeyPair::parse(&full).unwrap().public_key(),
            key.public_key()
        );
        *bytes.last_mut().unwrap() ^= 1;
        let mismatched = format!("{SECRET_KEY_PREFIX}{}", STANDARD.encode(&bytes));
        assert!(KeyPair::parse(&mismatched).is_err());
    }

    #[test]
    fn signing_key_kind_follows_prefix() {
        assert!(matches!(
            SigningKey::parse(VECTOR_SECRET),
            Ok(SigningKey::Hmac(_))
        ));
        let key = SigningKey::parse(&generate_key_pair()).unwrap();
        assert!(key.public_key().unwrap().starts_with(PUBLIC_KEY_PREFIX));
        assert_eq!(
            SigningKey::parse("whpk_AAAA").unwrap_err(),
            SignatureError::UnknownKind
        );
        assert_eq!(
            SigningKey::parse("whsk_AAAA").unwrap_err(),
            SignatureError::KeyFormat(SECRET_KEY_PREFIX)
        );
    }
}
