//! `proxy.webservice`: the URL that checks a user name and password, and the JSON body it is
//! sent (`%s` for the user name, then `%s` for the password).

use super::auth_model::WebserviceConfig;
use super::convert::Fields;
use super::model::AuthMethod;
use super::node::At;
use super::report::Report;

const DEFAULT_BODY: &str = r#"{"username": "%s", "password": "%s"}"#;

pub fn check_webservice(
    proxy: &Fields,
    auth: AuthMethod,
    report: &mut Report,
) -> Option<WebserviceConfig> {
    let section = Fields::of(
        proxy.get("webservice").map(|(n, _)| n),
        "proxy.webservice",
        report,
    );
    let Some((url_node, url_path)) = section.get("authentication-url") else {
        if auth == AuthMethod::Webservice {
            let at = proxy
                .get("authentication")
                .map(|(n, _)| n.at.clone())
                .unwrap_or_else(|| At::file(0, 0));
            report.error(
                &at,
                "proxy.webservice.authentication-url",
                "authentication: webservice needs proxy.webservice.authentication-url",
            );
        }
        return None;
    };
    let url = section.text("authentication-url", report)?;
    let valid = url
        .parse::<http::Uri>()
        .ok()
        .is_some_and(|u| matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some());
    if !valid {
        report.error(
            &url_node.at,
            &url_path,
            "expected an http:// or https:// URL, e.g. https://auth.example.org/login",
        );
    }
    let body_template = section
        .text("authentication-request-body", report)
        .unwrap_or_else(|| DEFAULT_BODY.into());
    if body_template.matches("%s").count() != 2
        && let Some((n, p)) = section.get("authentication-request-body")
    {
        report.error(
            &n.at,
            &p,
            format!(
                "the body needs two %s, for the user name and then the password, e.g. \
                     {DEFAULT_BODY}"
            ),
        );
    }
    valid.then_some(WebserviceConfig { url, body_template })
}
