//! The HTTP API's routes: keys, listings, status, metrics and the API's
//! own description. Every request is authenticated (a client certificate
//! or a bearer token), checked against its role, and handed to the core
//! like a QUIC client's request.

use super::{BODY_TIMEOUT, State};
use crate::net::tls::{PeerCertificate, Role};
use crate::net::tokens::{self, TOKEN_CACHE, TokenRecord};
use crate::proto::message::{AdminResponse, ListRequest, MAX_LIST_LIMIT, after, prefix_end};
use crate::proto::{
    AdminRequest, ClientRequest, ClientResponse, Consistency, Context, Fanout, Request, RequestError,
    Response, Value, WatchRequest,
};
use axum::body::{Body, Bytes};
use axum::extract::{Query, State as Shared};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::routing::get;
use axum::{Extension, Json, Router};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
#[cfg(test)]
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The header carrying a key's causal context.
pub const CONTEXT_HEADER: &str = "x-shoal-context";
/// The API's description, served at `/v1/openapi.json`.
const OPENAPI: &str = include_str!("openapi.json");
/// The status page, with its styles and script.
const PAGE: &str = include_str!("page.html");
/// Most token records remembered.
const TOKEN_CACHE_ENTRIES: usize = 10_000;

/// The certificate the connection presented, if any.
#[derive(Clone)]
struct Connection {
    certificate: Option<PeerCertificate>,
}

/// The routes, for one connection.
pub(super) fn router(state: Arc<State>, certificate: Option<PeerCertificate>) -> Router {
    Router::new()
        .route("/v1/kv", get(list))
        .route("/v1/kv/{*key}", get(get_key).put(put_key).delete(delete_key))
        .route("/v1/status", get(status))
        .route("/v1/openapi.json", get(openapi))
        .route("/metrics", get(metrics))
        .route("/", get(page))
        .fallback(not_found)
        .layer(Extension(Connection { certificate }))
        .with_state(state)
}

/// An error answer: a status, a stable code, the message the CLI would
/// print, and details.
#[derive(Debug)]
pub(super) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    details: serde_json::Value,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            details: serde_json::Value::Null,
        }
    }

    fn bad_parameter(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_parameter", message)
    }

    fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> HttpResponse {
        let mut body = serde_json::json!({ "code": self.code, "message": self.message });
        if let serde_json::Value::Object(details) = self.details {
            body.as_object_mut().expect("an object").extend(details);
        }
        let mut response = (self.status, Json(serde_json::json!({ "error": body }))).into_response();
        let headers = response.headers_mut();
        match self.status {
            StatusCode::UNAUTHORIZED => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        response
    }
}

impl From<RequestError> for ApiError {
    fn from(error: RequestError) -> ApiError {
        use StatusCode as S;
        let message = error.to_string();
        let (status, code, details) = match &error {
            RequestError::QuorumNotMet {
                succeeded,
                required,
                replicas,
                ..
            } => (
                S::SERVICE_UNAVAILABLE,
                "quorum_not_met",
                serde_json::json!({ "succeeded": succeeded, "required": required, "replicas": replicas }),
            ),
            RequestError::ImpossibleConsistency { .. } => (S::BAD_REQUEST, "impossible_consistency", Null),
            RequestError::BadKeySize { .. } => (S::BAD_REQUEST, "bad_key_size", Null),
            RequestError::ValueTooLarge { .. } => (S::PAYLOAD_TOO_LARGE, "value_too_large", Null),
            RequestError::StateTooLarge { .. } => (S::PAYLOAD_TOO_LARGE, "state_too_large", Null),
            RequestError::TooManySiblings { .. } => (S::CONFLICT, "too_many_siblings", Null),
            RequestError::Busy { .. } => (S::TOO_MANY_REQUESTS, "busy", Null),
            RequestError::InvalidListing { .. } => (S::BAD_REQUEST, "invalid_listing", Null),
            RequestError::BadTtl { .. } => (S::BAD_REQUEST, "bad_ttl", Null),
            RequestError::BadWatchTimeout { .. } => (S::BAD_REQUEST, "bad_watch_timeout", Null),
            RequestError::MalformedContext { .. } => (S::BAD_REQUEST, "malformed_context", Null),
            RequestError::Forbidden { needed, .. } => {
                (S::FORBIDDEN, "forbidden", serde_json::json!({ "needed": needed }))
            }
            RequestError::NotReady { .. } => (S::SERVICE_UNAVAILABLE, "not_ready", Null),
            RequestError::StorageFailed { .. } => (S::SERVICE_UNAVAILABLE, "storage_failed", Null),
            RequestError::OutOfMemory { max, .. } => (
                S::INSUFFICIENT_STORAGE,
                "out_of_memory",
                serde_json::json!({ "max_memory_bytes": max }),
            ),
            RequestError::NoReplicas
            | RequestError::NotReplica { .. }
            | RequestError::ForwardFailed { .. } => (S::SERVICE_UNAVAILABLE, "unavailable", Null),
            #[allow(unreachable_patterns)]
            _ => (S::INTERNAL_SERVER_ERROR, "error", Null),
        };
        ApiError {
            status,
            code,
            message,
            details,
        }
    }
}

use serde_json::Value::Null;

/// Token records read lately, by id: `None` for an id with no usable
/// record.
#[derive(Default)]
pub(super) struct TokenCache {
    entries: Mutex<HashMap<String, (Instant, Option<TokenRecord>)>>,
}

/// Who is asking: the role of a certificate or token (`None`: a
/// certificate without a role, issued by a holder of the CA key for
/// itself, which may do anything, as on QUIC).
async fn authenticate(
    state: &State,
    connection: &Connection,
    headers: &HeaderMap,
) -> Result<Option<Role>, ApiError> {
    if let Some(certificate) = &connection.certificate {
        if state.revoked.borrow().is_revoked(&certificate.serial) {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "certificate_revoked",
                "this certificate has been revoked",
            ));
        }
        return Ok(certificate.role);
    }
    let Some(authorization) = headers.get(header::AUTHORIZATION) else {
        let how = if state.plain {
            "a bearer token (Authorization: Bearer shoal.…)"
        } else {
            "a client certificate of the cluster CA or a bearer token (Authorization: Bearer shoal.…)"
        };
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            format!("authenticate with {how}"),
        ));
    };
    let token = authorization
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or("");
    let refused = || ApiError::new(StatusCode::UNAUTHORIZED, "bad_token", "unknown or revoked token");
    let (id, secret) = tokens::parse(token).ok_or_else(refused)?;
    let record = token_record(state, id).await?;
    match record {
        Some(record) if record.admits(secret) => record.role().map(Some).ok_or_else(refused),
        _ => Err(refused()),
    }
}

/// The record of token `id`, from the cache or read at QUORUM.
async fn token_record(state: &State, id: &str) -> Result<Option<TokenRecord>, ApiError> {
    if let Some((at, record)) = state.tokens.entries.lock().expect("not poisoned").get(id)
        && at.elapsed() < TOKEN_CACHE
    {
        return Ok(record.clone());
    }
    let request = Request::Data(ClientRequest::Get {
        key: tokens::record_key(id),
        consistency: Consistency::Quorum,
        timeout_ms: None,
        fanout: Fanout::All,
    });
    let record = match call(state, request).await? {
        ClientResponse::Found { values, .. } => TokenRecord::from_values(&values),
        ClientResponse::Failed(error) => {
            return Err(ApiError::unavailable(format!(
                "cannot check the token now: {error}"
            )));
        }
        _ => None,
    };
    let mut entries = state.tokens.entries.lock().expect("not poisoned");
    if entries.len() >= TOKEN_CACHE_ENTRIES {
        entries.retain(|_, (at, _)| at.elapsed() < TOKEN_CACHE);
    }
    if entries.len() < TOKEN_CACHE_ENTRIES {
        entries.insert(id.to_string(), (Instant::now(), record.clone()));
    }
    Ok(record)
}

/// Refuses a request the role may not make, naming the role needed.
fn authorize(role: Option<Role>, request: &Request) -> Result<(), ApiError> {
    match role {
        Some(role) if !role.allows(request) => Err(RequestError::Forbidden {
            role: role.to_string(),
            needed: Role::needed_for(request).to_string(),
        }
        .into()),
        _ => Ok(()),
    }
}

/// Hands a data or listing request to the core; its answer.
async fn call(state: &State, request: Request) -> Result<ClientResponse, ApiError> {
    match ask(state, request).await? {
        Response::Data(ClientResponse::Failed(error)) => Err(error.into()),
        Response::Data(response) => Ok(response),
        other => Err(unexpected(other)),
    }
}

async fn ask(state: &State, request: Request) -> Result<Response, ApiError> {
    super::super::submit(&state.events, request)
        .await
        .map_err(|super::super::Stopped| ApiError::unavailable("the node is stopping"))
}

/// The core answered with something this request never gets.
fn unexpected(answer: impl std::fmt::Debug) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "error",
        format!("unexpected answer {answer:?}"),
    )
}

/// Per-request options from the query string.
struct Options {
    consistency: Consistency,
    timeout_ms: Option<u32>,
    sloppy: bool,
    /// `?ttl=30s` on a put: the value's time to live (the node checks it
    /// against `min_ttl..=max_ttl`).
    ttl_ms: Option<u64>,
}

fn options(query: &HashMap<String, String>) -> Result<Options, ApiError> {
    let consistency = match query.get("consistency") {
        Some(text) => text
            .parse()
            .map_err(|e| ApiError::bad_parameter(format!("consistency: {e}")))?,
        None => Consistency::Default,
    };
    let timeout_ms = match query.get("timeout") {
        Some(text) => {
            let timeout = humantime_serde::re::humantime::parse_duration(text)
                .map_err(|e| ApiError::bad_parameter(format!("timeout `{text}`: {e}")))?;
            if timeout.is_zero() || timeout > Duration::from_secs(600) {
                return Err(ApiError::bad_parameter("timeout: between 1ms and 10m"));
            }
            Some(timeout.as_millis() as u32)
        }
        None => None,
    };
    let sloppy = match query.get("sloppy").map(String::as_str) {
        None | Some("true") => true,
        Some("false") => false,
        Some(other) => {
            return Err(ApiError::bad_parameter(format!(
                "sloppy: `{other}` is not true or false"
            )));
        }
    };
    let ttl_ms = match query.get("ttl") {
        Some(text) => {
            let ttl = humantime_serde::re::humantime::parse_duration(text)
                .map_err(|e| ApiError::bad_parameter(format!("ttl `{text}`: {e}")))?;
            Some(crate::proto::types::millis(ttl))
        }
        None => None,
    };
    Ok(Options {
        consistency,
        timeout_ms,
        sloppy,
        ttl_ms,
    })
}

/// The key named by the path after `/v1/kv/`, percent-decoded to bytes.
fn key_of(uri: &Uri) -> Result<Vec<u8>, ApiError> {
    let raw = uri.path().strip_prefix("/v1/kv/").unwrap_or("");
    percent_decode(raw).ok_or_else(|| ApiError::bad_parameter("the key is not validly percent-encoded"))
}

fn percent_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

fn context_of(headers: &HeaderMap) -> Result<Context, ApiError> {
    match headers.get(CONTEXT_HEADER) {
        None => Ok(Context::empty()),
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|text| text.trim().parse().ok())
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "malformed_context",
                    "X-Shoal-Context is not a context a read returned",
                )
            }),
    }
}

fn with_context(mut response: HttpResponse, context: &Context) -> HttpResponse {
    if let Ok(value) = HeaderValue::from_str(&context.to_string()) {
        response.headers_mut().insert(CONTEXT_HEADER, value);
    }
    response
}

fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("application/json"))
}

fn value_json(value: &Value) -> serde_json::Value {
    serde_json::json!({ "value_base64": STANDARD.encode(&value.value), "timestamp_ms": value.timestamp_ms })
}

/// How long a watch over HTTP waits when `timeout` is not given.
const DEFAULT_WATCH_MS: u32 = 30_000;

/// `GET /v1/kv/{key}`: a read, or with `?watch=CONTEXT` a watch (the
/// key's state once it changes past the context, as a read answers it;
/// `304 Not Modified` at the timeout, `?timeout=`, 30 s by default).
async fn get_key(
    Shared(state): Shared<Arc<State>>,
    Extension(connection): Extension<Connection>,
    uri: Uri,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let role = authenticate(&state, &connection, &headers).await?;
    let options = options(&query)?;
    let request = match query.get("watch") {
        // `?watch=CONTEXT`: wait for a change past it (empty: any state).
        Some(text) => Request::Watch(WatchRequest {
            key: key_of(&uri)?,
            context: text.trim().parse().map_err(|_| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "malformed_context",
                    "watch is not a context a read returned",
                )
            })?,
            timeout_ms: options.timeout_ms.unwrap_or(DEFAULT_WATCH_MS),
        }),
        None => Request::Data(ClientRequest::Get {
            key: key_of(&uri)?,
            consistency: options.consistency,
            timeout_ms: options.timeout_ms,
            fanout: Fanout::All,
        }),
    };
    authorize(role, &request)?;
    let (values, context) = match (call(&state, request.clone()).await?, &request) {
        (ClientResponse::Found { values, context }, _) => (values, context),
        (ClientResponse::Unchanged, Request::Watch(watch)) => {
            let response = StatusCode::NOT_MODIFIED.into_response();
            return Ok(with_context(response, &watch.context));
        }
        _ => return Err(unexpected("an answer of another kind")),
    };
    let response = if wants_json(&headers) {
        let status = if values.is_empty() {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::OK
        };
        let body = serde_json::json!({
            "values": values.iter().map(value_json).collect::<Vec<_>>(),
            "context": context.to_string(),
        });
        (status, Json(body)).into_response()
    } else {
        match values.as_slice() {
            [] => ApiError::new(StatusCode::NOT_FOUND, "not_found", "no value for this key").into_response(),
            [one] => (
                [(header::CONTENT_TYPE, "application/octet-stream")],
                Body::from(one.value.clone()),
            )
                .into_response(),
            siblings => multipart(siblings),
        }
    };
    Ok(with_context(response, &context))
}

/// Several siblings as `300 Multiple Choices`, one part each.
fn multipart(siblings: &[Value]) -> HttpResponse {
    let boundary = format!("shoal-{:016x}", rand::random::<u64>());
    let mut body = Vec::new();
    for sibling in siblings {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        body.extend_from_slice(b"Content-Type: application/octet-stream\r\n");
        body.extend_from_slice(format!("X-Shoal-Timestamp-Ms: {}\r\n\r\n", sibling.timestamp_ms).as_bytes());
        body.extend_from_slice(&sibling.value);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let content_type = format!("multipart/mixed; boundary={boundary}");
    (
        StatusCode::MULTIPLE_CHOICES,
        [(header::CONTENT_TYPE, content_type)],
        Body::from(body),
    )
        .into_response()
}

/// Reads and drops up to `limit` bytes of a body the request will not use
/// (for at most 5 s).
async fn drain(body: Body, limit: usize) {
    use http_body_util::BodyExt;
    let mut body = http_body_util::Limited::new(body, limit);
    let reading = async { while let Some(Ok(_)) = body.frame().await {} };
    let _ = tokio::time::timeout(Duration::from_secs(5), reading).await;
}

/// A request body, read with a cap of `limit` bytes and a time limit.
async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let read = axum::body::to_bytes(body, limit);
    match tokio::time::timeout(BODY_TIMEOUT, read).await {
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "slow_body",
            "the body did not arrive in time",
        )),
        Ok(Ok(bytes)) => Ok(bytes),
        // The rest of the body is not read: the connection closes after
        // the answer (and a client still sending may see it reset).
        Ok(Err(_)) => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "value_too_large",
            format!("the value exceeds the limit of {limit} bytes"),
        )),
    }
}

/// `PUT /v1/kv/{key}`.
async fn put_key(
    Shared(state): Shared<Arc<State>>,
    Extension(connection): Extension<Connection>,
    uri: Uri,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    let admitted = async {
        let role = authenticate(&state, &connection, &headers).await?;
        let options = options(&query)?;
        let key = key_of(&uri)?;
        let context = context_of(&headers)?;
        // Refuse before reading a body the role may not send.
        let probe = Request::Data(ClientRequest::Delete {
            key: key.clone(),
            context: Context::empty(),
            consistency: options.consistency,
            timeout_ms: None,
            sloppy_quorum: false,
        });
        authorize(role, &probe)?;
        Ok::<_, ApiError>((key, context, options))
    };
    let limit = state.config.max_value_bytes;
    let (key, context, options) = match admitted.await {
        Ok(admitted) => admitted,
        Err(error) => {
            // Read what the client is sending (bounded) before answering:
            // closing on unread bytes resets the connection, and the
            // client may lose the answer.
            drain(body, limit).await;
            return Err(error);
        }
    };
    let value = read_body(body, limit).await?.to_vec();
    let request = Request::Data(ClientRequest::Put {
        key,
        value,
        context,
        consistency: options.consistency,
        timeout_ms: options.timeout_ms,
        sloppy_quorum: options.sloppy,
        ttl_ms: options.ttl_ms,
    });
    written(call(&state, request).await?)
}

/// `DELETE /v1/kv/{key}`.
async fn delete_key(
    Shared(state): Shared<Arc<State>>,
    Extension(connection): Extension<Connection>,
    uri: Uri,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let role = authenticate(&state, &connection, &headers).await?;
    let options = options(&query)?;
    let request = Request::Data(ClientRequest::Delete {
        key: key_of(&uri)?,
        context: context_of(&headers)?,
        consistency: options.consistency,
        timeout_ms: options.timeout_ms,
        sloppy_quorum: options.sloppy,
    });
    authorize(role, &request)?;
    written(call(&state, request).await?)
}

fn written(response: ClientResponse) -> Result<HttpResponse, ApiError> {
    match response {
        ClientResponse::Written { context, .. } => {
            let body = Json(serde_json::json!({ "context": context.to_string() }));
            Ok(with_context(body.into_response(), &context))
        }
        other => Err(unexpected(other)),
    }
}

/// `GET /v1/kv?prefix=&start=&end=&limit=&cursor=&values=`.
async fn list(
    Shared(state): Shared<Arc<State>>,
    Extension(connection): Extension<Connection>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let role = authenticate(&state, &connection, &headers).await?;
    let options = options(&query)?;
    let text = |name: &str| query.get(name).map(|v| v.as_bytes().to_vec());
    let (mut start, end) = match (text("prefix"), text("start"), text("end")) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            return Err(ApiError::bad_parameter("give either prefix or start/end"));
        }
        (Some(prefix), _, _) => {
            let end = prefix_end(&prefix);
            (prefix, end)
        }
        (None, start, end) => (start.unwrap_or_default(), end),
    };
    if let Some(cursor) = query.get("cursor") {
        let last = URL_SAFE_NO_PAD
            .decode(cursor)
            .map_err(|_| ApiError::bad_parameter("cursor: not one a listing returned"))?;
        start = start.max(after(&last));
    }
    let limit = match query.get("limit") {
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|l| (1..=MAX_LIST_LIMIT).contains(l))
            .ok_or_else(|| ApiError::bad_parameter(format!("limit: 1..={MAX_LIST_LIMIT}")))?,
        None => crate::client::DEFAULT_LIST_LIMIT,
    };
    let values = query.get("values").is_some_and(|v| v == "true");
    let request = Request::List(ListRequest {
        start,
        end,
        limit,
        values,
        consistency: options.consistency,
        timeout_ms: options.timeout_ms,
    });
    authorize(role, &request)?;
    let ClientResponse::Listed { keys, next } = call(&state, request).await? else {
        return Err(unexpected("an answer of another kind"));
    };
    let keys: Vec<serde_json::Value> = keys
        .iter()
        .map(|listed| {
            let mut entry = serde_json::json!({
                "key_base64": STANDARD.encode(&listed.key),
                "context": listed.context.to_string(),
            });
            if let Ok(text) = std::str::from_utf8(&listed.key) {
                entry["key"] = text.into();
            }
            if values {
                entry["values"] = listed.values.iter().map(value_json).collect::<Vec<_>>().into();
            }
            entry
        })
        .collect();
    let cursor = next.map(|last| URL_SAFE_NO_PAD.encode(last));
    Ok(Json(serde_json::json!({ "keys": keys, "cursor": cursor })).into_response())
}

/// `GET /v1/status`: what `shoal status --json` shows.
async fn status(
    Shared(state): Shared<Arc<State>>,
    Extension(connection): Extension<Connection>,
    headers: HeaderMap,
) -> Result<HttpResponse, ApiError> {
    let role = authenticate(&state, &connection, &headers).await?;
    let request = Request::Admin(AdminRequest::Status);
    authorize(role, &request)?;
    match ask(&state, request).await? {
        Response::Admin(AdminResponse::Status(report)) => {
            let members = state.peer_reports(&report).await;
            let json = crate::node::status_json(&report, &members)
                .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "error", e.to_string()))?;
            Ok(Json(json).into_response())
        }
        other => Err(unexpected(other)),
    }
}

/// `GET /metrics`: the Prometheus text (any authenticated role).
async fn metrics(
    Shared(state): Shared<Arc<State>>,
    Extension(connection): Extension<Connection>,
    headers: HeaderMap,
) -> Result<HttpResponse, ApiError> {
    authenticate(&state, &connection, &headers).await?;
    let text = crate::node::metrics::handle(state.node).render();
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}

/// `GET /`: the live status page. It holds no data (it reads
/// `/v1/status` with the visitor's certificate or token), so it is served
/// to anyone; its assets are all in it.
async fn page() -> HttpResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        PAGE,
    )
        .into_response()
}

/// `GET /v1/openapi.json`: this API, described (no authentication: it
/// holds no data).
async fn openapi() -> HttpResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no_route",
        format!("no such endpoint: {} (see /v1/openapi.json)", uri.path()),
    )
}

/// The routes served, for the description's test.
#[cfg(test)]
fn routes() -> BTreeMap<&'static str, Vec<&'static str>> {
    BTreeMap::from([
        ("/v1/kv", vec!["get"]),
        ("/v1/kv/{key}", vec!["delete", "get", "put"]),
        ("/v1/status", vec!["get"]),
        ("/v1/openapi.json", vec!["get"]),
        ("/metrics", vec!["get"]),
        ("/", vec!["get"]),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_description_names_every_route_and_method_served() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).expect("valid JSON");
        let described: BTreeMap<String, Vec<String>> = doc["paths"]
            .as_object()
            .expect("paths")
            .iter()
            .map(|(path, item)| {
                let methods = ["delete", "get", "post", "put"]
                    .into_iter()
                    .filter(|m| item.get(*m).is_some())
                    .map(String::from)
                    .collect();
                (path.clone(), methods)
            })
            .collect();
        let served: BTreeMap<String, Vec<String>> = routes()
            .into_iter()
            .map(|(path, methods)| (path.to_string(), methods.into_iter().map(String::from).collect()))
            .collect();
        assert_eq!(described, served);
    }

    #[test]
    fn keys_are_percent_decoded_to_any_bytes() {
        assert_eq!(percent_decode("a%2Fb%00%ff"), Some(b"a/b\0\xff".to_vec()));
        assert_eq!(percent_decode("a%2"), None);
        assert_eq!(percent_decode("%zz"), None);
    }
}
