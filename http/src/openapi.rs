//! The OpenAPI 3.1 document served at `GET /openapi.json`.
//!
//! Generated with `utoipa` from the handlers themselves: each handler
//! registered by [`crate::endpoints`] carries a `#[utoipa::path]` attribute
//! with its route and the answers it gives — the one declaration the router
//! takes its route from too — and the bodies are described by the types
//! that render them (the readiness views, [`crate::error::ErrorBody`], the
//! schemas of [`crate::schemas`]), so the document cannot drift from them.
//!
//! What every endpoint shares is added by [`Common`] rather than repeated on
//! each handler: the guard's 403 (Host, and Origin for WebSocket upgrades and
//! POSTs), the 503 with `Retry-After` of a connection over
//! `max_connections`, and for the admin endpoints (tag `admin`) the optional
//! bearer token and its 401.
//!
//! `tests/openapi.rs` checks that every documented operation is served;
//! `scripts/check-openapi.sh` validates the document and runs schemathesis
//! against a live server.

use axum::{
    extract::State,
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use utoipa::{
    openapi::{
        path::Operation,
        schema::{ObjectBuilder, OneOfBuilder, Schema, Type},
        security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme},
        ContentBuilder, Header, Ref, RefOr, ResponseBuilder,
    },
    Modify, OpenApi,
};

use crate::{
    error::ErrorBody,
    schemas::{HealthStatus, ServiceStatus},
};

/// The document's frame: its info, shared schemas and tags. The paths come
/// from the router ([`crate::endpoints`]).
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Hearth",
        description = "Local voice engines (TTS, STT, chat, VAD) loaded as plugins, behind a readiness-aware HTTP API. \
            Every error is JSON: `{\"error\": {\"code\", \"message\"}}` (schema `Error`). A path or method that \
            does not exist answers 404 `not_found` or 405 `method_not_allowed` (responses `NotFound` and \
            `MethodNotAllowed`). Every request may be refused with 403 by the Host/Origin guard, and every \
            connection over `[host] max_connections` with 503 and `Retry-After`; the admin endpoints need \
            `Authorization: Bearer <token>` when a token is configured (else 401).",
    ),
    components(schemas(ErrorBody, ServiceStatus, HealthStatus)),
    tags(
        (name = "probes", description = "For liveness and readiness probes: tiny text bodies."),
        (name = "readiness", description = "The readiness state as JSON, Server-Sent Events or WebSocket."),
        (name = "admin", description = "Change engines. Need the admin token when one is configured."),
        (name = "websocket", description = "WebSocket endpoints: a plain GET (no upgrade) is answered 400."),
        (name = "page", description = "The web page and its assets, embedded in the binary."),
        (name = "meta", description = "This document and the metrics."),
        (name = "openai", description = "OpenAI-compatible endpoints: speech, transcription, chat, models."),
    ),
)]
pub struct ApiDoc;

/// The document of the router's endpoints, as JSON: what every endpoint
/// shares added ([`Common`]), serialized once.
pub fn finish(mut document: utoipa::openapi::OpenApi) -> bytes::Bytes {
    Common.modify(&mut document);
    bytes::Bytes::from(document.to_json().expect("the OpenAPI document serializes"))
}

/// `GET /openapi.json`.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "meta",
    summary = "This document: OpenAPI 3.1",
    responses((status = 200, description = "The OpenAPI 3.1 document of every endpoint", body = serde_json::Value)),
)]
pub async fn document(State(state): State<crate::AppState>) -> Response {
    let body = state.openapi.get().cloned().unwrap_or_default();
    let mut response = (StatusCode::OK, body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Adds what every endpoint shares (see the module doc).
pub struct Common;

fn error_content() -> utoipa::openapi::Content {
    ContentBuilder::new()
        .schema(Some(Ref::from_schema_name("Error")))
        .build()
}

fn retry_after() -> Header {
    let mut header = Header::new(ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1)).build());
    header.description = Some("Seconds to wait before asking again".to_owned());
    header
}

const BUSY: &str = "Busy: `[host] max_connections` connections are open (code `busy`); the connection is closed";

impl Modify for Common {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.security_schemes.insert(
            "admin_token".to_owned(),
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The token of `[host] admin_token_file` or `HEARTH_ADMIN_TOKEN`; \
                         needed only when one is configured",
                    ))
                    .build(),
            ),
        );
        components.security_schemes.insert(
            "api_key".to_owned(),
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The key of `[host] api_key_file` or `HEARTH_API_KEY` for `/v1`; \
                         needed only when one is configured",
                    ))
                    .build(),
            ),
        );
        let error = |description: &str| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content("application/json", error_content())
                    .build(),
            )
        };
        let responses = [
            (
                "Forbidden",
                error(
                    "Refused by the guard (code `forbidden`): the `Host` does not name this server \
                     (`[host] allowed_hosts`), or a WebSocket upgrade or POST comes from a page not in \
                     `[host] allowed_origins`",
                ),
            ),
            (
                "Unauthorized",
                error(
                    "An admin token is configured and the request lacks `Authorization: Bearer <token>` \
                     or has another token (code `unauthorized`)",
                ),
            ),
            (
                "NoApiKey",
                error(
                    "An API key is configured and the request lacks `Authorization: Bearer <key>` or has \
                     another key (code `unauthorized`, type `authentication_error`)",
                ),
            ),
            ("NotFound", error("No such endpoint (code `not_found`)")),
            (
                "MethodNotAllowed",
                error("The endpoint exists but not with this method (code `method_not_allowed`)"),
            ),
            (
                "Busy",
                RefOr::T(
                    ResponseBuilder::new()
                        .description(BUSY)
                        .header("Retry-After", retry_after())
                        .content("application/json", error_content())
                        .build(),
                ),
            ),
        ];
        for (name, response) in responses {
            components.responses.insert(name.to_owned(), response);
        }

        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.options,
                &mut item.head,
                &mut item.patch,
                &mut item.trace,
            ];
            for operation in operations.into_iter().flatten() {
                common_answers(operation);
            }
        }
    }
}

/// The guard's 403, the busy 503 and, on admin endpoints, the token.
fn common_answers(operation: &mut Operation) {
    let responses = &mut operation.responses.responses;
    responses.insert("403".to_owned(), Ref::from_response_name("Forbidden").into());
    match responses.get_mut("503") {
        // The endpoint answers 503 itself (not ready, unhealthy): the busy
        // refusal is one more body it may carry.
        Some(RefOr::T(own)) => {
            own.description = format!("{}; or {BUSY}", own.description);
            own.headers.entry("Retry-After".to_owned()).or_insert_with(retry_after);
            match own.content.get_mut("application/json") {
                Some(content) => {
                    let mine = content
                        .schema
                        .take()
                        .unwrap_or_else(|| ObjectBuilder::new().build().into());
                    content.schema = Some(
                        Schema::OneOf(
                            OneOfBuilder::new()
                                .item(mine)
                                .item(Ref::from_schema_name("Error"))
                                .build(),
                        )
                        .into(),
                    );
                }
                None => {
                    own.content.insert("application/json".to_owned(), error_content());
                }
            }
        }
        _ => {
            responses.insert("503".to_owned(), Ref::from_response_name("Busy").into());
        }
    }
    let tagged = |tag: &str| {
        operation
            .tags
            .as_ref()
            .is_some_and(|tags| tags.iter().any(|t| t == tag))
    };
    let (admin, openai) = (tagged("admin"), tagged("openai"));
    if openai {
        operation
            .responses
            .responses
            .insert("401".to_owned(), Ref::from_response_name("NoApiKey").into());
        operation.security = Some(vec![
            SecurityRequirement::default(),
            SecurityRequirement::new("api_key", Vec::<String>::new()),
        ]);
    }
    if admin {
        operation
            .responses
            .responses
            .insert("401".to_owned(), Ref::from_response_name("Unauthorized").into());
        // No requirement (no token configured) or the bearer token.
        operation.security = Some(vec![
            SecurityRequirement::default(),
            SecurityRequirement::new("admin_token", Vec::<String>::new()),
        ]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_core::readiness::Phase;

    fn enum_values(schema: RefOr<utoipa::openapi::schema::Schema>) -> Vec<String> {
        let json = serde_json::to_value(schema).unwrap();
        json["enum"]
            .as_array()
            .expect("an enum")
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn every_phase_has_its_status_in_the_schema() {
        let values = enum_values(<ServiceStatus as utoipa::PartialSchema>::schema());
        let phases = [
            Phase::Pending,
            Phase::Loading {
                progress: 0.0,
                message: String::new(),
            },
            Phase::Warming,
            Phase::Ready,
            Phase::Failed { error: String::new() },
            Phase::NotInstalled { reason: String::new() },
            Phase::Disabled { reason: String::new() },
        ];
        for phase in phases {
            assert!(
                values.iter().any(|v| v == phase.status().as_str()),
                "{}",
                phase.status()
            );
        }
    }

    #[tokio::test]
    async fn the_document_is_openapi_3_1_with_the_shared_answers() {
        let config = hearth_core::config::Config::parse(std::path::Path::new("/x/plugins.toml"), "").unwrap();
        let (supervisor, _rx) = hearth_core::services::Supervisor::new(config);
        let state = crate::AppState::new(supervisor).unwrap();
        let _router = crate::router(state.clone());
        let doc: serde_json::Value = serde_json::from_slice(state.openapi.get().unwrap()).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1."));
        let paths = doc["paths"].as_object().unwrap();
        for (path, item) in paths {
            for (method, operation) in item.as_object().unwrap() {
                let responses = operation["responses"].as_object().unwrap();
                assert!(responses.contains_key("403"), "{method} {path}");
                assert!(responses.contains_key("503"), "{method} {path}");
            }
        }
        let reload = &doc["paths"]["/api/reload"]["post"];
        assert!(reload["responses"]["401"].is_object());
        assert_eq!(reload["security"][1]["admin_token"], serde_json::json!([]));
    }
}
