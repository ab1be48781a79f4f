//! Admin routes: tenants and their API keys.

use aurora_common::time::now_ms;
use aurora_schemas::{ApiKey, Tenant};
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde::{Deserialize, Serialize};

use crate::auth::generate_api_key;
use crate::error::ApiError;
use crate::http::{json, json_body, no_content, page_by_key, timestamp, HttpResponse, Query};
use crate::server::{write_row, App};

/// Maximum length of a tenant name, in characters.
const MAX_NAME_CHARS: usize = 200;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateTenant {
    name: String,
}

#[derive(Debug, Serialize)]
struct TenantView {
    id: String,
    name: String,
    created_at: String,
    api_keys: Vec<KeyView>,
}

#[derive(Debug, Serialize)]
struct KeyView {
    id: String,
    created_at: String,
}

/// A new key, the only time it is shown.
#[derive(Debug, Serialize)]
struct CreatedKey {
    id: String,
    key: String,
    created_at: String,
}

#[derive(Debug, Serialize)]
struct CreatedTenant {
    id: String,
    name: String,
    created_at: String,
    api_key: CreatedKey,
}

impl From<&Tenant> for TenantView {
    fn from(tenant: &Tenant) -> Self {
        TenantView {
            id: tenant.tenant_id.clone(),
            name: tenant.name.clone(),
            created_at: timestamp(tenant.created_at_ms),
            api_keys: tenant
                .api_keys
                .iter()
                .map(|key| KeyView {
                    id: key.key_id.clone(),
                    created_at: timestamp(key.created_at_ms),
                })
                .collect(),
        }
    }
}

/// `POST /v1/tenants`: creates a tenant and its first API key.
pub async fn create(app: &App, request: Request<Incoming>) -> Result<HttpResponse, ApiError> {
    let body: CreateTenant =
        json_body(request, app.config.max_body_bytes, r#"{"name": "..."}"#).await?;
    let name = body.name.trim();
    if name.is_empty()
        || name.chars().count() > MAX_NAME_CHARS
        || name.chars().any(char::is_control)
    {
        return Err(ApiError::invalid(
            "invalid_name",
            format!(
                "name must be 1 to {MAX_NAME_CHARS} characters long, without control characters"
            ),
        ));
    }
    let now = now_ms();
    let key = generate_api_key();
    let tenant = Tenant {
        tenant_id: format!("tn_{}", uuid::Uuid::new_v4().simple()),
        name: name.to_string(),
        api_keys: vec![ApiKey {
            key_id: key.key_id.clone(),
            sha256: key.sha256,
            created_at_ms: now,
        }],
        created_at_ms: now,
        updated_at_ms: now,
    };
    write(app, &tenant).await?;
    tracing::info!(tenant_id = %tenant.tenant_id, key_id = %key.key_id, "Tenant created.");
    let created = CreatedTenant {
        id: tenant.tenant_id.clone(),
        name: tenant.name.clone(),
        created_at: timestamp(now),
        api_key: CreatedKey {
            id: key.key_id,
            key: key.key,
            created_at: timestamp(now),
        },
    };
    Ok(json(StatusCode::CREATED, &created))
}

/// `GET /v1/tenants`: lists tenants by id.
pub async fn list(app: &App, request: &Request<Incoming>) -> Result<HttpResponse, ApiError> {
    let (limit, iterator) = Query::of(request).page()?;
    app.tenants.catch_up().await?;
    let rows = app.tenants.rows();
    let views: Vec<TenantView> = rows
        .values()
        .map(|tenant| TenantView::from(tenant.as_ref()))
        .collect();
    let page = page_by_key(views, |view| view.id.clone(), iterator, limit);
    Ok(json(StatusCode::OK, &page))
}

/// `GET /v1/tenants/{id}`.
pub async fn get(app: &App, tenant_id: &str) -> Result<HttpResponse, ApiError> {
    let tenant = found(app, tenant_id).await?;
    Ok(json(StatusCode::OK, &TenantView::from(&tenant)))
}

/// `POST /v1/tenants/{id}/api-keys`: adds a key; existing keys stay valid.
pub async fn create_key(app: &App, tenant_id: &str) -> Result<HttpResponse, ApiError> {
    let _turn = app.locks.lock(tenant_id).await;
    let mut tenant = found(app, tenant_id).await?;
    let now = now_ms();
    let key = generate_api_key();
    tenant.api_keys.push(ApiKey {
        key_id: key.key_id.clone(),
        sha256: key.sha256,
        created_at_ms: now,
    });
    tenant.updated_at_ms = now;
    write(app, &tenant).await?;
    tracing::info!(tenant_id, key_id = %key.key_id, "API key created.");
    let created = CreatedKey {
        id: key.key_id,
        key: key.key,
        created_at: timestamp(now),
    };
    Ok(json(StatusCode::CREATED, &created))
}

/// `DELETE /v1/tenants/{id}/api-keys/{key_id}`: revokes a key.
pub async fn revoke_key(
    app: &App,
    tenant_id: &str,
    key_id: &str,
) -> Result<HttpResponse, ApiError> {
    let _turn = app.locks.lock(tenant_id).await;
    let mut tenant = found(app, tenant_id).await?;
    let before = tenant.api_keys.len();
    tenant.api_keys.retain(|key| key.key_id != key_id);
    if tenant.api_keys.len() == before {
        return Err(ApiError::not_found("API key", key_id));
    }
    tenant.updated_at_ms = now_ms();
    write(app, &tenant).await?;
    tracing::info!(tenant_id, key_id, "API key revoked.");
    Ok(no_content())
}

async fn found(app: &App, tenant_id: &str) -> Result<Tenant, ApiError> {
    app.tenants.catch_up().await?;
    app.tenants
        .get(tenant_id)
        .map(|tenant| (*tenant).clone())
        .ok_or_else(|| ApiError::not_found("tenant", tenant_id))
}

/// Writes a tenant and waits until this instance has read it back.
async fn write(app: &App, tenant: &Tenant) -> Result<(), ApiError> {
    write_row(app, &app.topics.tenants, &app.tenants, tenant).await
}
