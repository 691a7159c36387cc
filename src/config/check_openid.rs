//! `proxy.openid.*`: the identity provider of `authentication: openid`; and `proxy.oauth2.*`,
//! an authorization server whose bearer JWTs scripts may use.
//!
//! No message here ever contains the client secret.

use super::convert::Fields;
use super::model::{AuthMethod, OAuth2Config, OpenIdConfig, Secret};
use super::node::At;
use super::report::Report;

pub fn check_openid(proxy: &Fields, auth: AuthMethod, report: &mut Report) -> Option<OpenIdConfig> {
    let section = proxy.get("openid");
    if auth != AuthMethod::OpenId {
        return None;
    }
    let at = section
        .as_ref()
        .map(|(n, _)| n.at.clone())
        .or_else(|| proxy.get("authentication").map(|(n, _)| n.at.clone()))
        .unwrap_or_else(|| At::file(0, 0));
    let fields = Fields::of(section.map(|(n, _)| n), "proxy.openid", report);

    let url = |name: &str, report: &mut Report| -> Option<String> {
        let (node, path) = fields.get(name)?;
        let text = super::convert::text(node, &path, report)?;
        if text.starts_with("https://") || text.starts_with("http://") {
            Some(text.trim_end().to_string())
        } else {
            report.error(
                &node.at,
                &path,
                format!("expected an http:// or https:// URL, found '{text}'"),
            );
            None
        }
    };
    let issuer = url("issuer", report);
    let auth_url = url("auth-url", report);
    let token_url = url("token-url", report);
    let jwks_url = url("jwks-url", report);
    let userinfo_url = url("userinfo-url", report);
    let logout_url = url("logout-url", report);
    if issuer.is_none() {
        for (name, value) in [
            ("auth-url", &auth_url),
            ("token-url", &token_url),
            ("jwks-url", &jwks_url),
        ] {
            if value.is_none() {
                report.error(
                    &at,
                    &format!("proxy.openid.{name}"),
                    format!(
                        "authentication: openid needs proxy.openid.{name}, or proxy.openid.issuer \
                         to discover it"
                    ),
                );
            }
        }
    }

    let required = |name: &str, report: &mut Report| -> String {
        match fields.text(name, report) {
            Some(v) if !v.trim().is_empty() => v,
            _ => {
                report.error(
                    &at,
                    &format!("proxy.openid.{name}"),
                    format!("authentication: openid needs proxy.openid.{name}"),
                );
                String::new()
            }
        }
    };
    let client_id = required("client-id", report);
    let client_secret = Secret(required("client-secret", report));

    let scopes = fields
        .text_list("scopes", report)
        .unwrap_or_else(|| vec!["openid".into(), "email".into()]);
    let scopes = scopes
        .iter()
        .flat_map(|s| s.split_whitespace())
        .filter(|s| *s != "openid")
        .map(String::from)
        .collect();

    Some(OpenIdConfig {
        issuer,
        auth_url,
        token_url,
        jwks_url,
        userinfo_url,
        client_id,
        client_secret,
        scopes,
        username_attribute: fields
            .text("username-attribute", report)
            .unwrap_or_else(|| "email".into()),
        roles_claim: fields.text("roles-claim", report),
        logout_url,
    })
}

pub fn check_oauth2(proxy: &Fields, report: &mut Report) -> Option<OAuth2Config> {
    let (node, path) = proxy.get("oauth2")?;
    let at = node.at.clone();
    let fields = Fields::of(Some(node), &path, report);
    let url = |name: &str, report: &mut Report| -> Option<String> {
        let (node, path) = fields.get(name)?;
        let text = super::convert::text(node, &path, report)?;
        if text.starts_with("https://") || text.starts_with("http://") {
            Some(text.trim_end().to_string())
        } else {
            report.error(
                &node.at,
                &path,
                format!("expected an http:// or https:// URL, found '{text}'"),
            );
            None
        }
    };
    let Some(jwks_url) = url("jwks-url", report) else {
        report.error(
            &at,
            "proxy.oauth2.jwks-url",
            "proxy.oauth2 needs jwks-url, the authorization server's signing keys",
        );
        return None;
    };
    Some(OAuth2Config {
        jwks_url,
        issuer: fields.text("issuer", report),
        audience: fields.text("resource-id", report),
        username_attribute: fields
            .text("username-attribute", report)
            .unwrap_or_else(|| "sub".into()),
        roles_claim: fields.text("roles-claim", report),
    })
}
