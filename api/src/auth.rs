//! API keys and who a request comes from.
//!
//! Keys are 32 random bytes, shown once when created; only their SHA-256 is stored, on the
//! tenants topic. A plain hash suffices because the keys are random, not passwords.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aurora_common::table::Rows;
use aurora_common::TenantTable;
use aurora_schemas::Tenant;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hyper::header::AUTHORIZATION;
use hyper::{HeaderMap, StatusCode};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// Prefix of every API key.
pub const API_KEY_PREFIX: &str = "ak_";
const API_KEY_BYTES: usize = 32;

/// A new API key.
pub struct NewKey {
    /// The key itself, shown once.
    pub key: String,
    /// Public identifier, for listings and revocation.
    pub key_id: String,
    /// Hex SHA-256 of the key, which is what is stored.
    pub sha256: String,
}

/// Generates a random API key.
pub fn generate_api_key() -> NewKey {
    let mut bytes = [0u8; API_KEY_BYTES];
    rand::rng().fill_bytes(&mut bytes);
    let key = format!("{API_KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    let sha256 = hash_api_key(&key);
    NewKey {
        key_id: format!("key_{}", &sha256[..16]),
        key,
        sha256,
    }
}

/// Returns the hex SHA-256 of a key.
pub fn hash_api_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// The sender of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// The operator, with the admin key.
    Admin,
    /// A tenant, with one of its API keys.
    Tenant(String),
}

/// Tenant id by key hash, built from one snapshot of the tenants table.
type KeyIndex = (Rows<Tenant>, Arc<HashMap<String, String>>);

/// Finds the caller of a request from its bearer key.
pub struct Authenticator {
    admin_sha256: Option<String>,
    tenants: TenantTable,
    index: Mutex<KeyIndex>,
}

impl Authenticator {
    pub fn new(admin_sha256: Option<String>, tenants: TenantTable) -> Self {
        Authenticator {
            admin_sha256,
            tenants,
            index: Mutex::new((Arc::default(), Arc::default())),
        }
    }

    /// Authenticates a request. A key that is not found is looked up again after catching up
    /// with the tenants topic, so a key created through another instance works at once.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        let key = bearer_key(headers)?;
        let sha256 = hash_api_key(key);
        if self.admin_sha256.as_deref() == Some(sha256.as_str()) {
            return Ok(Caller::Admin);
        }
        if let Some(tenant_id) = self.lookup(&sha256) {
            return Ok(Caller::Tenant(tenant_id));
        }
        self.tenants.catch_up().await?;
        self.lookup(&sha256).map(Caller::Tenant).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "the API key is not valid; it may have been revoked",
            )
        })
    }

    /// Returns whether admin routes are enabled.
    pub fn has_admin(&self) -> bool {
        self.admin_sha256.is_some()
    }

    fn lookup(&self, sha256: &str) -> Option<String> {
        let rows = self.tenants.rows();
        let mut index = self
            .index
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !Arc::ptr_eq(&index.0, &rows) {
            let by_hash = rows
                .values()
                .flat_map(|tenant| {
                    tenant
                        .api_keys
                        .iter()
                        .map(|key| (key.sha256.clone(), tenant.tenant_id.clone()))
                })
                .collect();
            *index = (rows, Arc::new(by_hash));
        }
        index.1.get(sha256).cloned()
    }
}

fn bearer_key(headers: &HeaderMap) -> Result<&str, ApiError> {
    let missing = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send the API key in an Authorization: Bearer <key> header",
        )
    };
    let value = headers.get(AUTHORIZATION).ok_or_else(missing)?;
    let text = value.to_str().map_err(|_| missing())?;
    let (scheme, key) = text.split_once(' ').ok_or_else(missing)?;
    if !scheme.eq_ignore_ascii_case("bearer") || key.trim().is_empty() {
        return Err(missing());
    }
    Ok(key.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_differ_and_hash_to_their_id() {
        let first = generate_api_key();
        let second = generate_api_key();
        assert_ne!(first.key, second.key);
        assert!(first.key.starts_with(API_KEY_PREFIX));
        assert_eq!(hash_api_key(&first.key), first.sha256);
        assert!(first.key_id.ends_with(&first.sha256[..16]));
        assert!(!first.sha256.contains(&first.key));
    }

    #[test]
    fn bearer_key_needs_scheme_and_key() {
        let headers = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(AUTHORIZATION, value.parse().unwrap());
            headers
        };
        assert_eq!(bearer_key(&headers("Bearer ak_1")).unwrap(), "ak_1");
        assert_eq!(bearer_key(&headers("bearer  ak_1")).unwrap(), "ak_1");
        assert!(bearer_key(&headers("Basic ak_1")).is_err());
        assert!(bearer_key(&headers("Bearer ")).is_err());
        assert!(bearer_key(&HeaderMap::new()).is_err());
    }
}
