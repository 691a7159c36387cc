//! Reading vestibule's Prometheus metrics from the management port, as a dashboard would.

/// A port for `management.server.port` (bound and released at once).
pub fn management_port() -> u16 {
    super::ports::free_port()
}

/// The exposition text; checks it is served as OpenMetrics.
pub async fn scrape(port: u16) -> String {
    let resp = reqwest::get(format!("http://127.0.0.1:{port}/actuator/prometheus"))
        .await
        .expect("scrape");
    assert_eq!(resp.status(), 200);
    let kind = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
    resp.text().await.expect("metrics text")
}

/// The value of the sample `line_start` (metric name and labels), if present.
pub fn sample(text: &str, line_start: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(line_start))
        .and_then(|rest| rest.trim().split(' ').next())
        .and_then(|v| v.parse().ok())
}
