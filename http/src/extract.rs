//! axum's extractors, refusing in Hearth's JSON error shape.
//!
//! axum answers a query or path it cannot parse, and a plain GET on a
//! WebSocket endpoint, with a `text/plain` 400; every other error Hearth
//! gives is `{"error": {"code", "message"}}` ([`ApiError`]). These
//! wrappers extract the same things and turn the refusal into a
//! [`ApiError::BadRequest`] (or [`ApiError::MethodNotAllowed`]), so
//! clients, and the OpenAPI document, see one error shape.

use axum::{
    extract::{ws::WebSocketUpgrade, FromRequestParts},
    http::{request::Parts, StatusCode},
};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// [`axum::extract::Query`] with a JSON refusal.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Self(value))
            .map_err(|e| ApiError::BadRequest(e.body_text()))
    }
}

/// [`axum::extract::Path`] with a JSON refusal.
#[derive(Debug)]
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Self(value))
            .map_err(|e| ApiError::BadRequest(e.body_text()))
    }
}

/// [`WebSocketUpgrade`] with a JSON refusal: a request that is not a
/// WebSocket upgrade (a plain GET) gets 400 saying so.
pub struct Upgrade(pub WebSocketUpgrade);

impl<S: Send + Sync> FromRequestParts<S> for Upgrade {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match WebSocketUpgrade::from_request_parts(parts, state).await {
            Ok(upgrade) => Ok(Self(upgrade)),
            Err(e) if e.status() == StatusCode::METHOD_NOT_ALLOWED => Err(ApiError::MethodNotAllowed {
                method: parts.method.to_string(),
                path: parts.uri.path().to_owned(),
            }),
            Err(e) => Err(ApiError::BadRequest(format!(
                "{} is a WebSocket endpoint: connect with a WebSocket client ({})",
                parts.uri.path(),
                e.body_text()
            ))),
        }
    }
}

/// [`axum::Json`] with a JSON refusal that says what is wrong with the body.
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> axum::extract::FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError::TooLarge(e.body_text())),
            Err(e) => Err(ApiError::BadRequest(e.body_text())),
        }
    }
}

/// [`axum::extract::Multipart`] with a JSON refusal.
pub struct Multipart(pub axum::extract::Multipart);

impl<S: Send + Sync> axum::extract::FromRequest<S> for Multipart {
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Multipart::from_request(request, state)
            .await
            .map(Self)
            .map_err(|e| ApiError::BadRequest(format!("{}; send multipart/form-data", e.body_text())))
    }
}
