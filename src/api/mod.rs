//! The HTTP API: [`router`] builds every route over an [`AppState`] and stacks the
//! middleware (request id, tracing span, metrics, panic guard, body limit).
//!
//! Handlers live one concern per module; [`error::ApiError`] is the one status table.

mod auth;
pub mod deadline;
pub mod docs;
mod door;
pub mod error;
mod explain;
mod extract;
mod health;
mod import;
pub mod instances;
mod loading;
mod models;
mod monitoring;
mod named;
mod named_monitoring;
mod named_train;
mod predict;
mod routing;
pub(crate) mod train;
pub mod v2;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::batching::Batcher;
use crate::config::Config;
use crate::executor::ActiveModel;
use crate::explainer::Explainer;
use crate::metrics::Metrics;
use crate::registry::Store;
use crate::serving::Models;
use crate::training::jobs::Trainer;
pub use error::ApiError;
pub use extract::{ApiJson, parse_json};
pub use predict::PredictRequest;

/// Header naming the model version that computed a response.
pub const MODEL_VERSION_HEADER: HeaderName = HeaderName::from_static("x-model-version");
const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Handles shared by every handler: one `Arc`, so the clone each request makes is
/// one reference count.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What every handler reaches through [`AppState`].
pub struct Shared {
    pub config: Arc<Config>,
    pub batcher: Batcher,
    pub model: ActiveModel,
    pub metrics: Metrics,
    /// Cancelled when shutdown begins: readiness turns 503 at once.
    pub draining: CancellationToken,
    pub store: Store,
    pub models: Models,
    pub trainer: Trainer,
    pub explainer: Explainer,
    /// One `POST /models` import at a time (each holds a whole model in memory).
    pub imports: Arc<tokio::sync::Semaphore>,
    /// `POST /train` bodies read and checked at once (each may hold a large CSV).
    pub train_parses: Arc<tokio::sync::Semaphore>,
    /// Prediction ids, the prediction log, feedback and live quality.
    pub monitor: Arc<crate::monitoring::Monitor>,
    /// Work a request leaves running after its answer (a shadow mirror): shutdown
    /// waits for it before the batcher closes.
    pub after_reply: tokio_util::task::TaskTracker,
    /// What a prediction is: route choice, checks, ids, sampling, mirroring.
    pub inference: crate::serving::infer::Inference,
    /// The default model (`model.name`), whose handles the fields above repeat.
    pub default: Arc<crate::serving::bundle::Bundle>,
    /// The named models served beside the default one.
    pub catalog: crate::serving::catalog::Catalog,
}

impl Shared {
    /// The model a client names: the default one by `model.name`, else a named
    /// model this process serves.
    pub fn bundle(&self, name: &str) -> Option<Arc<crate::serving::bundle::Bundle>> {
        if name == self.config.model.name {
            return Some(self.default.clone());
        }
        let name = crate::registry::ModelName::parse(name).ok()?;
        self.catalog.get(&name)
    }
}

/// Every route, with the middleware stack.
pub fn router(state: AppState) -> Router {
    let request_id = REQUEST_ID_HEADER;
    Router::new()
        .route("/", get(docs::index))
        .route("/predict", post(predict::predict))
        .route("/feedback", post(monitoring::feedback))
        .route("/monitoring", get(monitoring::report))
        .route("/monitoring/drift", get(monitoring::drift))
        .route("/explain", post(explain::explain))
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .route("/metrics", get(health::metrics))
        .route("/train", post(train::submit).get(train::list))
        .route("/train/{id}", get(train::get).delete(train::cancel))
        .route(
            "/models",
            get(models::list)
                .post(import::upload)
                .layer(DefaultBodyLimit::max(state.config.server.max_upload_bytes)),
        )
        .route("/models/rollback", post(models::rollback))
        .route("/models/{version}", get(models::get).delete(models::delete))
        .route("/models/{version}/promote", post(models::promote))
        .route("/models/{version}/predict", post(named::predict))
        .route("/models/{version}/explain", post(named::explain))
        .route(
            "/models/{version}/train",
            post(named_train::submit).get(named_train::list),
        )
        .route(
            "/models/{version}/versions",
            get(named::versions)
                .post(named::upload)
                .layer(DefaultBodyLimit::max(state.config.server.max_upload_bytes)),
        )
        .route(
            "/models/{version}/versions/{v}/promote",
            post(named::promote),
        )
        .route(
            "/models/{version}/feedback",
            post(named_monitoring::feedback),
        )
        .route(
            "/models/{version}/monitoring",
            get(named_monitoring::report),
        )
        .route(
            "/models/{version}/monitoring/drift",
            get(named_monitoring::drift),
        )
        .route(
            "/models/{version}/versions/{v}/canary",
            post(named_monitoring::canary),
        )
        .route(
            "/models/{version}/versions/{v}/shadow",
            post(named_monitoring::shadow),
        )
        .route("/v2/repository/index", post(named::index))
        .route("/v2/repository/models/{name}/load", post(loading::load))
        .route("/v2/repository/models/{name}/unload", post(loading::unload))
        .route("/models/{version}/canary", post(routing::canary))
        .route("/models/{version}/shadow", post(routing::shadow))
        .route("/openapi.json", get(docs::openapi))
        .route("/docs", get(docs::ui))
        .route("/docs/swagger-ui-bundle.js", get(docs::swagger_js))
        .route("/docs/swagger-ui.css", get(docs::swagger_css))
        .route("/v2", get(v2::server_metadata))
        .route("/v2/health/live", get(v2::live))
        .route("/v2/health/ready", get(v2::ready))
        .route("/v2/models/{name}", get(v2::model_metadata))
        .route("/v2/models/{name}/ready", get(v2::model_ready))
        .route("/v2/models/{name}/config", get(v2::model_config))
        .route("/v2/models/{name}/infer", post(v2::infer))
        .route(
            "/v2/models/{name}/versions/{version}",
            get(v2::version_metadata),
        )
        .route(
            "/v2/models/{name}/versions/{version}/ready",
            get(v2::version_ready),
        )
        .route(
            "/v2/models/{name}/versions/{version}/infer",
            post(v2::infer_version),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Inside the metrics layer: a panic is answered, and counted, as a 500.
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::Internal("a handler panicked".into()).into_response()
        }))
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
                // 5xx are not logged here as failures: the access log has every
                // answer (a 503 while draining is deliberate), internal errors log
                // their detail where they happen.
                .layer(
                    TraceLayer::new_for_http()
                        .on_failure(())
                        .make_span_with(|req: &Request| {
                            let id = req
                                .headers()
                                .get(&REQUEST_ID_HEADER)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("-");
                            tracing::info_span!(
                                "request",
                                method = %req.method(),
                                uri = %req.uri(),
                                request_id = %id,
                                model_version = tracing::field::Empty,
                            )
                        }),
                )
                .layer(PropagateRequestIdLayer::new(request_id)),
        )
        .with_state(state)
}

/// Bounds every request by `server.request_timeout_ms` (504 after), and counts
/// every answered request by matched route and status, and its duration.
async fn track(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    req.extensions_mut()
        .insert(deadline::Arrival(tokio::time::Instant::now()));
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let started = Instant::now();
    let method = req.method().clone();
    let request_id = req.headers().get(&REQUEST_ID_HEADER).cloned();
    let limit = state.config.server.request_timeout();
    let response = match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::DeadlineExceeded(format!(
            "the request was not answered within {} ms (server.request_timeout_ms)",
            limit.as_millis()
        ))
        .into_response(),
    };
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    state
        .metrics
        .observe_request(&route, status, elapsed.as_secs_f64());
    if state.config.telemetry.access_log {
        let text =
            |v: Option<&HeaderValue>| v.and_then(|v| v.to_str().ok()).unwrap_or("-").to_owned();
        // A client's text (a field name, say) may be long: the log keeps the start.
        let reason = response.extensions().get::<error::Reason>().map(|r| {
            let end = r.0.char_indices().nth(200).map_or(r.0.len(), |(i, _)| i);
            &r.0[..end]
        });
        tracing::info!(
            target: "kiln::access",
            method = %method,
            route,
            status,
            ms = format_args!("{:.2}", elapsed.as_secs_f64() * 1000.0),
            version = text(response.headers().get(MODEL_VERSION_HEADER)).as_str(),
            request_id = text(request_id.as_ref()).as_str(),
            reason = reason.unwrap_or(""),
            "request"
        );
    }
    response
}

async fn not_found(req: Request) -> ApiError {
    ApiError::NotFound(format!(
        "no route for {} {}",
        req.method(),
        req.uri().path()
    ))
}

async fn method_not_allowed(req: Request) -> ApiError {
    ApiError::MethodNotAllowed(format!(
        "{} is not allowed on {}",
        req.method(),
        req.uri().path()
    ))
}
