//! The keys that sign an endpoint's deliveries: opened from their sealed form and parsed once
//! per endpoint version, then reused.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aurora_common::sealed::{self, SealKey};
use aurora_schemas::Subscription;

use crate::signature::SigningKey;

/// An endpoint's keys as of one version of its subscription.
pub(crate) struct EndpointKeys {
    updated_at_ms: i64,
    current: Result<SigningKey, String>,
    /// The key before the last rotation, with the end of its window.
    previous: Option<(i64, Result<SigningKey, String>)>,
}

impl EndpointKeys {
    fn open(endpoint: &Subscription, seal_key: Option<&SealKey>) -> EndpointKeys {
        let parse = |stored: &str| {
            let plain = sealed::open(seal_key, &endpoint.endpoint_id, stored)
                .map_err(|error| error.to_string())?;
            SigningKey::parse(&plain).map_err(|error| error.to_string())
        };
        EndpointKeys {
            updated_at_ms: endpoint.updated_at_ms,
            current: parse(&endpoint.secret),
            previous: endpoint
                .previous_secret
                .as_deref()
                .map(|previous| (endpoint.previous_secret_expires_at_ms, parse(previous))),
        }
    }

    /// Returns the keys to sign with at `now_ms`: the current one, and the previous one while
    /// its rotation window lasts.
    pub(crate) fn signing(&self, now_ms: i64) -> Result<Vec<&SigningKey>, String> {
        let mut keys = vec![self.current.as_ref().map_err(Clone::clone)?];
        if let Some((expires_at_ms, previous)) = &self.previous {
            if now_ms < *expires_at_ms {
                keys.push(previous.as_ref().map_err(Clone::clone)?);
            }
        }
        Ok(keys)
    }
}

/// Parsed keys by endpoint id.
pub(crate) struct KeyCache {
    seal_key: Option<SealKey>,
    endpoints: Mutex<HashMap<String, Arc<EndpointKeys>>>,
}

impl KeyCache {
    pub(crate) fn new(seal_key: Option<SealKey>) -> KeyCache {
        KeyCache {
            seal_key,
            endpoints: Mutex::default(),
        }
    }

    /// Returns the keys of this version of the endpoint, parsing them when it changed.
    pub(crate) fn get(&self, endpoint: &Subscription) -> Arc<EndpointKeys> {
        let mut endpoints = self
            .endpoints
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(keys) = endpoints.get(&endpoint.endpoint_id) {
            if keys.updated_at_ms == endpoint.updated_at_ms {
                return keys.clone();
            }
        }
        let keys = Arc::new(EndpointKeys::open(endpoint, self.seal_key.as_ref()));
        endpoints.insert(endpoint.endpoint_id.clone(), keys.clone());
        keys
    }
}
