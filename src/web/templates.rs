//! Server-rendered pages: minijinja templates compiled into the binary.

use axum::response::{Html, IntoResponse, Response};
use http::StatusCode;
use minijinja::{Environment, Value};

const TEMPLATES: [(&str, &str); 10] = [
    ("base.html", include_str!("templates/base.html")),
    ("login.html", include_str!("templates/login.html")),
    ("portal.html", include_str!("templates/portal.html")),
    ("app.html", include_str!("templates/app.html")),
    ("my_apps.html", include_str!("templates/my_apps.html")),
    ("instances.html", include_str!("templates/instances.html")),
    ("admin.html", include_str!("templates/admin.html")),
    (
        "admin_instance.html",
        include_str!("templates/admin_instance.html"),
    ),
    ("error.html", include_str!("templates/error.html")),
    ("tokens.html", include_str!("templates/tokens.html")),
];

pub struct Templates {
    env: Environment<'static>,
}

impl Templates {
    pub fn new() -> Result<Self, minijinja::Error> {
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            env.add_template(name, source)?;
        }
        env.add_filter("duration", human_duration);
        Ok(Self { env })
    }

    pub fn render(&self, status: StatusCode, name: &str, ctx: Value) -> Response {
        match self.env.get_template(name).and_then(|t| t.render(ctx)) {
            Ok(html) => (status, Html(html)).into_response(),
            Err(e) => {
                tracing::error!(template = name, error = %e, "rendering a page failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "page rendering failed").into_response()
            }
        }
    }
}

fn human_duration(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min", secs / 60),
        3600..86400 => format!("{} h {} min", secs / 3600, (secs % 3600) / 60),
        _ => format!("{} d {} h", secs / 86400, (secs % 86400) / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_compiles() {
        assert!(Templates::new().is_ok());
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(5), "5 s");
        assert_eq!(human_duration(125), "2 min");
        assert_eq!(human_duration(3700), "1 h 1 min");
    }
}
