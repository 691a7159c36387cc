//! What browsers may do with the portal: who may frame its pages (`server.frame-options`,
//! ShinyProxy's key) and which other sites' pages may open an app's WebSocket
//! (`proxy.allowed-origins`, vestibule's own).

use super::convert::Fields;
use super::report::Report;

/// `server.frame-options`: which pages may show portal pages in a frame (clickjacking).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum FrameOptions {
    /// Send nothing: any site may frame the portal.
    Disable,
    /// No page may frame the portal, not even its own.
    Deny,
    /// Only the portal's own pages (the app page frames the app). The default.
    #[default]
    SameOrigin,
    /// Only pages from this origin (and, as CSP has no "self" default here, not the portal's).
    AllowFrom(String),
}

pub fn check_frame_options(server: &Fields, report: &mut Report) -> FrameOptions {
    let Some(text) = server.text("frame-options", report) else {
        return FrameOptions::default();
    };
    let lower = text.trim().to_ascii_lowercase();
    match lower.as_str() {
        "disable" | "disabled" => FrameOptions::Disable,
        "deny" => FrameOptions::Deny,
        "sameorigin" | "same-origin" => FrameOptions::SameOrigin,
        _ => match lower
            .strip_prefix("allow-from")
            .map(|o| o.trim_start_matches([':', ' ']).trim())
            .and_then(normalise_origin)
        {
            Some(origin) => FrameOptions::AllowFrom(origin),
            None => {
                if let Some((node, path)) = server.get("frame-options") {
                    report.error(
                        &node.at,
                        &path,
                        format!(
                            "'{text}' is not a frame option (disable, deny, sameorigin, or \
                             allow-from https://host)"
                        ),
                    );
                }
                FrameOptions::default()
            }
        },
    }
}

/// `proxy.allowed-origins`: origins besides the portal's own whose pages may open app
/// WebSockets, as `scheme://host[:port]`.
pub fn check_allowed_origins(proxy: &Fields, report: &mut Report) -> Vec<String> {
    let Some((node, path)) = proxy.get("allowed-origins") else {
        return Vec::new();
    };
    let mut origins = Vec::new();
    for text in proxy
        .text_list("allowed-origins", report)
        .unwrap_or_default()
    {
        match normalise_origin(&text) {
            Some(o) => origins.push(o),
            None => report.error(
                &node.at,
                &path,
                format!("'{text}' is not an origin (write scheme://host or scheme://host:port)"),
            ),
        }
    }
    origins
}

/// `proxy.app-domain` (vestibule's own): the domain under which each instance gets a host of
/// its own (`<instance>.<app-domain>`), lower-case, without scheme, port or dots at the ends.
pub fn check_app_domain(proxy: &Fields, report: &mut Report) -> Option<String> {
    let (node, path) = proxy.get("app-domain")?;
    let text = proxy.text("app-domain", report)?;
    let domain = text.trim().trim_matches('.').to_ascii_lowercase();
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if domain.split('.').all(label_ok) {
        return Some(domain);
    }
    report.error(
        &node.at,
        &path,
        format!(
            "'{text}' is not a domain name (write apps.example.com: no scheme, port or path; each \
             instance is then served at <instance-id>.apps.example.com)"
        ),
    );
    None
}

/// `Https://Example.org:443/` → `https://example.org`: the form browsers send in `Origin`.
pub fn normalise_origin(text: &str) -> Option<String> {
    let lower = text.trim().trim_end_matches('/').to_ascii_lowercase();
    let (scheme, authority) = lower.split_once("://")?;
    if !matches!(scheme, "http" | "https")
        || authority.is_empty()
        || authority.contains(['/', '?', '#', '@', ' '])
    {
        return None;
    }
    let default_port = if scheme == "https" { ":443" } else { ":80" };
    let authority = authority.strip_suffix(default_port).unwrap_or(authority);
    Some(format!("{scheme}://{authority}"))
}

#[cfg(test)]
mod tests {
    use super::normalise_origin;

    #[test]
    fn origins_in_the_form_browsers_send() {
        assert_eq!(
            normalise_origin("Https://Example.org:443/").as_deref(),
            Some("https://example.org")
        );
        assert_eq!(
            normalise_origin("http://a.example:8080").as_deref(),
            Some("http://a.example:8080")
        );
        for bad in ["example.org", "ftp://x", "https://", "https://a/b", "null"] {
            assert_eq!(normalise_origin(bad), None, "{bad}");
        }
    }
}
