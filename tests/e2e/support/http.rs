//! Plain HTTP GETs for tests: a failed request fails the test naming the URL.

/// `GET url` with an optional `Accept` header; returns the status and the body.
pub async fn get_with(url: &str, accept: Option<&str>) -> (u16, String) {
    let mut request = reqwest::Client::new().get(url);
    if let Some(accept) = accept {
        request = request.header("Accept", accept);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// `GET url`; returns the status and the body.
pub async fn get(url: &str) -> (u16, String) {
    get_with(url, None).await
}

/// `GET url`; returns the body, failing the test unless the status is 2xx.
pub async fn get_ok(url: &str) -> String {
    let (status, body) = get(url).await;
    assert!((200..300).contains(&status), "GET {url}: {status}\n{body}");
    body
}
