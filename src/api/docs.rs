//! The API described by itself: the OpenAPI document generated from the handlers'
//! annotations (`GET /openapi.json`) and Swagger UI to browse it (`GET /docs`),
//! served from files compiled into the binary (no CDN).

use axum::Json;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::error::ErrorBody;
use super::{
    explain, health, import, loading, models, monitoring, named, named_monitoring, named_train,
    predict, routing, train, v2,
};

/// Swagger UI 5 (swagger-ui-dist, Apache-2.0; see assets/swagger-ui/LICENSE).
const SWAGGER_JS: &[u8] = include_bytes!("../../assets/swagger-ui/swagger-ui-bundle.js");
const SWAGGER_CSS: &[u8] = include_bytes!("../../assets/swagger-ui/swagger-ui.css");

#[derive(OpenApi)]
#[openapi(
    info(
        title = "kiln",
        description = "An inference server with an embedded trainer: predictions through a dynamic batching queue, \
                       background training jobs, model versions with promotion and rollback, and the Open Inference \
                       Protocol v2. Every error is `{\"error\": \"...\"}`."
    ),
    paths(
        predict::predict,
        explain::explain,
        monitoring::feedback,
        monitoring::report,
        monitoring::drift,
        health::live,
        health::ready,
        health::metrics,
        train::submit,
        train::list,
        train::get,
        train::cancel,
        models::list,
        models::get,
        import::upload,
        models::promote,
        routing::canary,
        routing::shadow,
        models::rollback,
        models::delete,
        v2::server_metadata,
        v2::live,
        v2::ready,
        v2::model_metadata,
        v2::version_metadata,
        v2::model_ready,
        v2::version_ready,
        v2::model_config,
        v2::infer,
        v2::infer_version,
        named::predict,
        named::explain,
        named::versions,
        named::upload,
        named::promote,
        named::index,
        named_train::submit,
        named_train::list,
        loading::load,
        loading::unload,
        named_monitoring::feedback,
        named_monitoring::report,
        named_monitoring::drift,
        named_monitoring::canary,
        named_monitoring::shadow,
        openapi,
        ui,
    ),
    components(schemas(ErrorBody)),
    modifiers(&Bearer, &Links),
    tags(
        (name = "predict", description = "Predictions and their explanations"),
        (name = "training", description = "Background training jobs"),
        (name = "monitoring", description = "Labels for answered predictions, and live quality"),
        (name = "models", description = "Versions, promotion, rollback"),
        (name = "health", description = "Liveness, readiness, metrics"),
        (name = "oip-v2", description = "KServe Open Inference Protocol v2 and Triton's model config"),
        (name = "docs", description = "This document"),
    )
)]
pub struct ApiDoc;

/// Declares the bearer-token scheme the mutating endpoints use.
struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
    }
}

/// OpenAPI links from the operations that name jobs and versions to the ones
/// that take them, so clients (and schemathesis's stateful phase) can follow a
/// `POST /train` to its job and `GET /models` to its versions.
struct Links;

impl Modify for Links {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::RefOr;
        use utoipa::openapi::link::LinkBuilder;
        let link = |path: &str, method: &str, param: &str, from: &str| {
            let escaped = path.replace('~', "~0").replace('/', "~1");
            LinkBuilder::new()
                .operation_ref(format!("#/paths/{escaped}/{method}"))
                .parameter(param, format!("$response.body#/{from}"))
                .build()
        };
        // (from path, method, status, [(link name, to path, method, parameter, body field)])
        type Target = (
            &'static str,
            &'static str,
            &'static str,
            &'static str,
            &'static str,
        );
        let links: [(&str, &str, &str, [Target; 2]); 2] = [
            (
                "/train",
                "post",
                "202",
                [
                    ("job", "/train/{id}", "get", "id", "id"),
                    ("cancel", "/train/{id}", "delete", "id", "id"),
                ],
            ),
            (
                "/models",
                "get",
                "200",
                [
                    ("active", "/models/{version}", "get", "version", "active"),
                    (
                        "promote_active",
                        "/models/{version}/promote",
                        "post",
                        "version",
                        "active",
                    ),
                ],
            ),
        ];
        for (path, method, status, targets) in links {
            let Some(item) = openapi.paths.paths.get_mut(path) else {
                continue;
            };
            let operation = match method {
                "post" => item.post.as_mut(),
                _ => item.get.as_mut(),
            };
            let Some(RefOr::T(response)) =
                operation.and_then(|o| o.responses.responses.get_mut(status))
            else {
                continue;
            };
            for (name, target, target_method, param, from) in targets {
                response.links.insert(
                    name.into(),
                    RefOr::T(link(target, target_method, param, from)),
                );
            }
        }
    }
}

/// `GET /openapi.json`.
#[utoipa::path(get, path = "/openapi.json", tag = "docs",
    responses((status = 200, description = "This OpenAPI document", body = Object)))]
pub async fn openapi() -> impl IntoResponse {
    Json(ApiDoc::openapi())
}

/// `GET /docs`: Swagger UI over `/openapi.json`.
#[utoipa::path(get, path = "/docs", tag = "docs",
    responses((status = 200, description = "Swagger UI", body = String, content_type = "text/html")))]
pub async fn ui() -> Html<&'static str> {
    Html(
        r##"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>kiln API</title>
<link rel="stylesheet" href="/docs/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script>window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui"});</script>
</body></html>"##,
    )
}

pub async fn swagger_js() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SWAGGER_JS,
    )
}

pub async fn swagger_css() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        SWAGGER_CSS,
    )
}

/// `GET /`: where to start.
#[derive(serde::Serialize)]
pub struct Index {
    name: &'static str,
    version: &'static str,
    docs: &'static str,
    openapi: &'static str,
    predict: &'static str,
}

/// `GET /`: points people to the API docs.
pub async fn index() -> axum::Json<Index> {
    axum::Json(Index {
        name: "kiln",
        version: env!("CARGO_PKG_VERSION"),
        docs: "/docs",
        openapi: "/openapi.json",
        predict: "POST /predict {\"instances\": [[...]]}",
    })
}
