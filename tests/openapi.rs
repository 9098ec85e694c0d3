//! `GET /openapi.json` from a real `hearth serve` with the scripted
//! engines: an OpenAPI 3.1 document with a path for every route of the
//! endpoint table in `http/src/lib.rs` (parsed from the source, so a new
//! route without documentation fails here), and no path the table lacks.
//! The document's schemas are checked against live answers by
//! `scripts/check-openapi.sh` (schemathesis).

use std::time::{Duration, Instant};

use hearth_tests::{host_section, repo_root, scripted, ServeProcess};

/// `(method, path)` of every row of the table in `http/src/lib.rs`'s header.
fn router_table() -> Vec<(String, String)> {
    let source = std::fs::read_to_string(repo_root().join("http/src/lib.rs")).expect("http/src/lib.rs");
    let routes: Vec<(String, String)> = source
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.strip_prefix("//! |")?.split('|').map(str::trim).collect();
            let method = *cells.first()?;
            let path = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
            (method.chars().all(|c| c.is_ascii_uppercase()) && !method.is_empty() && path.starts_with('/'))
                .then(|| (method.to_owned(), path.to_owned()))
        })
        .collect();
    assert!(
        routes.len() >= 10,
        "the endpoint table in http/src/lib.rs was not found or changed shape: {routes:?}"
    );
    routes
}

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
fn the_document_is_openapi_3_1_and_covers_every_route_of_the_table() {
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
    let table = router_table();
    for (method, path) in &table {
        let operation = &paths
            .get(path)
            .unwrap_or_else(|| panic!("{method} {path} is in router.rs's table but not in /openapi.json"))
            [method.to_ascii_lowercase()];
        assert!(
            operation.is_object(),
            "{method} {path} is in router.rs's table but /openapi.json documents {path} without {method}"
        );
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
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            let method = method.to_ascii_uppercase();
            assert!(
                table.iter().any(|(m, p)| *m == method && p == path),
                "/openapi.json documents {method} {path}, which router.rs's table does not list"
            );
        }
    }
    for name in ["Readiness", "ServiceReadiness", "Health", "ServiceHealth", "Error"] {
        assert!(doc["components"]["schemas"][name].is_object(), "schema {name} missing");
    }

    // And every route of the table is really routed: a GET is answered by
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
