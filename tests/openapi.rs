//! `GET /openapi.json` from a real `hearth serve` with the scripted
//! engines: an OpenAPI 3.1 document that lists the endpoints clients rely
//! on, each with the answers every endpoint shares, and every operation it
//! lists is really served. (The router registers each endpoint from its one
//! declaration, the handler's `#[utoipa::path]`, so a route cannot lack
//! documentation.)
//! The document's schemas are checked against live answers by
//! `scripts/check-openapi.sh` (schemathesis).

use std::time::{Duration, Instant};

use hearth_tests::{host_section, scripted, ServeProcess};

/// `(method, path)` of every operation the document lists.
fn operations(doc: &serde_json::Value) -> Vec<(String, String)> {
    let paths = doc["paths"].as_object().expect("paths");
    paths
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |method| (method.to_ascii_uppercase(), path.clone()))
        })
        .collect()
}

/// Endpoints clients and probes rely on: the document (and so the router,
/// which registers each endpoint from the same declaration) must have them.
const EXPECTED: [(&str, &str); 21] = [
    ("GET", "/livez"),
    ("GET", "/readyz"),
    ("GET", "/api/ready"),
    ("GET", "/api/health"),
    ("GET", "/api/ready/stream"),
    ("GET", "/ws/ready"),
    ("POST", "/api/warmup"),
    ("POST", "/api/services/{name}/retry"),
    ("POST", "/api/services/{name}/restart"),
    ("POST", "/api/reload"),
    ("GET", "/ws/test"),
    ("GET", "/ws/conversation"),
    ("GET", "/"),
    ("GET", "/assets/{file}"),
    ("GET", "/v1/models"),
    ("GET", "/v1/models/{id}"),
    ("POST", "/v1/audio/speech"),
    ("POST", "/v1/audio/transcriptions"),
    ("POST", "/v1/chat/completions"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
];

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// The document, once the server answers.
fn document(server: &ServeProcess) -> serde_json::Value {
    let url = format!("http://127.0.0.1:{}/openapi.json", server.port);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(response) = client().get(&url).send() {
            assert_eq!(response.status(), 200, "GET /openapi.json");
            let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
            assert_eq!(content_type, "application/json");
            let text = response.text().unwrap();
            return serde_json::from_str(&text).unwrap_or_else(|e| panic!("/openapi.json is not JSON ({e}): {text}"));
        }
        assert!(Instant::now() < deadline, "hearth serve did not answer within 30 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_document_is_openapi_3_1_and_every_operation_in_it_is_served() {
    let config = format!(
        "{}{}{}{}",
        host_section(""),
        scripted("tts", ""),
        scripted("stt", ""),
        scripted("chat", "")
    );
    let server = ServeProcess::start(&config);
    let doc = document(&server);

    let version = doc["openapi"].as_str().expect("an `openapi` field");
    assert!(version.starts_with("3.1."), "openapi {version}, expected 3.1.x");
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());

    let paths = doc["paths"].as_object().expect("paths");
    let table = operations(&doc);
    for (method, path) in EXPECTED {
        assert!(
            table.iter().any(|(m, p)| m == method && p == path),
            "/openapi.json lacks {method} {path}"
        );
    }
    for (method, path) in &table {
        let operation = &paths[path][method.to_ascii_lowercase()];
        let responses = operation["responses"].as_object().expect("responses");
        // The guard and the connection limit apply to every endpoint.
        for status in ["403", "503"] {
            assert!(responses.contains_key(status), "{method} {path} lacks {status}");
        }
        if method == "POST" {
            assert!(
                responses.contains_key("401"),
                "{method} {path} lacks the admin token's 401"
            );
        }
    }
    for name in ["Readiness", "ServiceReadiness", "Health", "ServiceHealth", "Error"] {
        assert!(doc["components"]["schemas"][name].is_object(), "schema {name} missing");
    }

    // And every documented operation is really routed: a GET is answered by
    // its handler, a POST route answers GET with 405 (not 404).
    let client = client();
    for (method, path) in &table {
        let concrete = path
            .replace("{name}", "tts")
            .replace("{file}", "app.js")
            .replace("{id}", "scripted-tts");
        let response = client
            .get(format!("http://127.0.0.1:{}{concrete}", server.port))
            .send()
            .unwrap_or_else(|e| panic!("GET {concrete}: {e}"));
        let status = response.status().as_u16();
        let expected_in_doc = paths[path]["get"]["responses"]
            .as_object()
            .map(|r| r.contains_key(&status.to_string()));
        match method.as_str() {
            "GET" => assert!(
                status != 404 && expected_in_doc == Some(true),
                "GET {concrete} answered {status}, which its documentation does not list"
            ),
            _ => assert_eq!(status, 405, "GET {concrete} (a {method} route)"),
        }
    }
}
