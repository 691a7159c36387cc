//! How vestibule logs: `proxy.log-as-json` (ShinyProxy's switch) turns on one JSON object per
//! line, for log collectors.

use super::convert::Fields;
use super::report::Report;

pub fn check_log_as_json(proxy: &Fields, report: &mut Report) -> bool {
    proxy.boolean("log-as-json", report).unwrap_or(false)
}

/// `proxy.container-log-path`: where each instance's output is kept, one file per instance.
#[derive(Debug, Clone, PartialEq)]
pub enum ContainerLogs {
    /// A folder on this machine.
    Folder(std::path::PathBuf),
    /// `s3://bucket/prefix`, with the `container-log-s3-*` keys.
    S3(S3Logs),
}

#[derive(Clone, PartialEq)]
pub struct S3Logs {
    pub bucket: String,
    /// Key prefix inside the bucket, without leading or trailing '/'.
    pub prefix: String,
    /// `container-log-s3-endpoint` (ShinyProxy's default: AWS in eu-west-1).
    pub endpoint: String,
    /// Signing region, read from an AWS endpoint's host name; `us-east-1` elsewhere.
    pub region: String,
    pub access_key: Option<String>,
    pub access_secret: Option<super::model::Secret>,
    /// `container-log-s3-sse`: ask S3 to encrypt the objects (AES256).
    pub sse: bool,
}

impl std::fmt::Debug for S3Logs {
    // Only whether a key is set: neither half of the key pair belongs in a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Logs")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key", &self.access_key.as_ref().map(|_| "<set>"))
            .field("access_secret", &self.access_secret)
            .field("sse", &self.sse)
            .finish()
    }
}

const DEFAULT_S3_ENDPOINT: &str = "https://s3-eu-west-1.amazonaws.com";

pub fn check_container_logs(proxy: &Fields, report: &mut Report) -> Option<ContainerLogs> {
    // Read whatever the path is, so a mistyped value is reported even when unused.
    let endpoint = proxy
        .text("container-log-s3-endpoint", report)
        .map(|e| e.trim().trim_end_matches('/').to_string())
        .unwrap_or_else(|| DEFAULT_S3_ENDPOINT.into());
    let access_key = proxy.text("container-log-s3-access-key", report);
    let access_secret = proxy
        .text("container-log-s3-access-secret", report)
        .map(super::model::Secret);
    let sse = proxy
        .boolean("container-log-s3-sse", report)
        .unwrap_or(false);
    let (node, key) = proxy.get("container-log-path")?;
    let path = proxy.text("container-log-path", report)?;
    let path = path.trim();
    if path.is_empty() {
        return None;
    }
    let Some(rest) = path.strip_prefix("s3://") else {
        return Some(ContainerLogs::Folder(path.into()));
    };
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        report.error(
            &node.at,
            &key,
            "expected s3://<bucket>/<prefix>, found no bucket name",
        );
        return None;
    }
    Some(ContainerLogs::S3(S3Logs {
        bucket: bucket.to_string(),
        prefix: prefix.trim_matches('/').to_string(),
        region: aws_region(&endpoint).unwrap_or("us-east-1").to_string(),
        endpoint,
        access_key,
        access_secret,
        sse,
    }))
}

/// The region in `s3-eu-west-1.amazonaws.com` or `s3.eu-west-1.amazonaws.com`.
fn aws_region(endpoint: &str) -> Option<&str> {
    let host = endpoint.split("://").nth(1).unwrap_or(endpoint);
    let host = host.split(['/', ':']).next()?;
    let first = host.strip_suffix(".amazonaws.com")?;
    let region = first
        .strip_prefix("s3-")
        .or_else(|| first.strip_prefix("s3."))?;
    (!region.is_empty() && !region.contains('.')).then_some(region)
}

#[cfg(test)]
mod tests {
    use super::aws_region;

    #[test]
    fn finds_the_region_of_an_aws_endpoint() {
        assert_eq!(
            aws_region("https://s3-eu-west-1.amazonaws.com"),
            Some("eu-west-1")
        );
        assert_eq!(
            aws_region("https://s3.us-west-2.amazonaws.com/"),
            Some("us-west-2")
        );
        assert_eq!(aws_region("http://127.0.0.1:9000"), None);
    }
}
