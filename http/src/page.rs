//! The web page at `/` and its assets, embedded in the binary so there is
//! nothing else to install or serve.

use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};

use crate::{error::ApiError, extract::Path};

/// The page's files: name, content type, content.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/app.js"),
    ),
    (
        "capture-worklet.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/capture-worklet.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../assets/style.css"),
    ),
];

fn with_type(body: &'static str, content_type: &'static str) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Small files, and a page that must show the current build.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// `GET /`.
#[utoipa::path(get, path = "/", tag = "page", summary = "The web page",
    responses((status = 200, description = "The page", content_type = "text/html", body = String)))]
pub async fn index() -> Response {
    with_type(include_str!("../assets/index.html"), "text/html; charset=utf-8")
}

/// `GET /assets/{file}`.
#[utoipa::path(get, path = "/assets/{file}", tag = "page", summary = "The page's scripts and styles",
    params(("file" = String, Path, description = "`app.js`, `capture-worklet.js` or `style.css`", example = "app.js")),
    responses(
        (status = 200, description = "The file", content((String = "text/javascript"), (String = "text/css"))),
        (status = 400, description = "The name is not UTF-8 once percent-decoded (code `bad_request`)",
            body = crate::error::ErrorBody),
        (status = 404, description = "No such file (code `not_found`)", body = crate::error::ErrorBody),
    ))]
pub async fn asset(Path(file): Path<String>) -> Result<Response, ApiError> {
    ASSETS
        .iter()
        .find(|(name, _, _)| *name == file)
        .map(|(_, content_type, body)| with_type(body, content_type))
        .ok_or(ApiError::NoRoute {
            method: "GET".to_owned(),
            path: format!("/assets/{file}"),
        })
}
