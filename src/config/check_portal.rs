//! The portal's page settings (ShinyProxy's keys): `hide-navbar`, `notification-message`,
//! `template-groups`, and what `landing-page` may be.

use super::convert::{self, Fields};
use super::model::{AppLogo, LandingPage, MyAppsMode, TemplateGroup};
use super::report::Report;

pub struct PortalSettings {
    pub landing_page: LandingPage,
    pub my_apps_mode: MyAppsMode,
    pub hide_navbar: bool,
    pub notification_message: Option<String>,
    pub template_groups: Vec<TemplateGroup>,
    /// `default-app-logo-url`: the tile image of apps without a `logo-url`.
    pub default_logo_url: Option<String>,
    /// `default-app-logo-width`, `-height`, `-style`, `-classes`.
    pub default_logo: AppLogo,
}

pub fn check_portal(proxy: &Fields, report: &mut Report) -> PortalSettings {
    PortalSettings {
        landing_page: landing_page(proxy, report),
        my_apps_mode: my_apps_mode(proxy, report),
        hide_navbar: proxy.boolean("hide-navbar", report).unwrap_or(false),
        notification_message: proxy.text("notification-message", report),
        template_groups: template_groups(proxy, report),
        default_logo_url: proxy.text("default-app-logo-url", report),
        default_logo: app_logo(proxy, "default-app-logo-", report),
    }
}

/// How a tile's logo is drawn (ShinyProxy's `logo-width`, `logo-height`, `logo-style` and
/// `logo-classes`, and their `default-app-logo-*` forms): CSS values and class names, as
/// written.
pub fn app_logo(f: &Fields, prefix: &str, report: &mut Report) -> AppLogo {
    let mut text = |name: &str| f.text(&format!("{prefix}{name}"), report);
    AppLogo {
        width: text("width"),
        height: text("height"),
        style: text("style"),
        classes: text("classes"),
    }
}

impl AppLogo {
    /// Each setting of `self`, else of `fallback`.
    pub fn or(self, fallback: &AppLogo) -> AppLogo {
        AppLogo {
            width: self.width.or_else(|| fallback.width.clone()),
            height: self.height.or_else(|| fallback.height.clone()),
            style: self.style.or_else(|| fallback.style.clone()),
            classes: self.classes.or_else(|| fallback.classes.clone()),
        }
    }
}

fn landing_page(proxy: &Fields, report: &mut Report) -> LandingPage {
    let Some((node, path)) = proxy.get("landing-page") else {
        return LandingPage::Portal;
    };
    match convert::text(node, &path, report).as_deref() {
        None | Some("/") => LandingPage::Portal,
        Some("SingleApp") => LandingPage::SingleApp,
        Some("FirstApp") => LandingPage::FirstApp,
        Some(url)
            if url.starts_with('/')
                || url.starts_with("http://")
                || url.starts_with("https://") =>
        {
            LandingPage::Url(url.to_string())
        }
        Some(other) => {
            report.error(
                &node.at,
                &path,
                format!(
                    "'{other}' is not a landing page: use /, SingleApp, FirstApp, a path \
                     starting with / or an http(s) URL"
                ),
            );
            LandingPage::Portal
        }
    }
}

/// `my-apps-mode`: the user's instances beside the apps (`Inline`), behind a button
/// (`Modal`), or only on their own page (`None`).
fn my_apps_mode(proxy: &Fields, report: &mut Report) -> MyAppsMode {
    let Some((node, path)) = proxy.get("my-apps-mode") else {
        return MyAppsMode::None;
    };
    match convert::text(node, &path, report).as_deref() {
        Some(m) if m.eq_ignore_ascii_case("inline") => MyAppsMode::Inline,
        Some(m) if m.eq_ignore_ascii_case("modal") => MyAppsMode::Modal,
        Some(m) if m.eq_ignore_ascii_case("none") => MyAppsMode::None,
        Some(other) => {
            report.error(
                &node.at,
                &path,
                format!("'{other}' is not a my-apps-mode: use Inline, Modal or None"),
            );
            MyAppsMode::None
        }
        None => MyAppsMode::None,
    }
}

fn template_groups(proxy: &Fields, report: &mut Report) -> Vec<TemplateGroup> {
    let mut groups = Vec::new();
    for (item, item_path) in convert::list_items(proxy, "template-groups", report) {
        let f = Fields::of(Some(item), &item_path, report);
        let Some(id) = f.text("id", report) else {
            report.error(&item.at, &item_path, "a template group needs an id");
            continue;
        };
        let props = Fields::of(
            f.get("properties").map(|(n, _)| n),
            &format!("{item_path}.properties"),
            report,
        );
        let display_name = props
            .text("display-name", report)
            .unwrap_or_else(|| id.clone());
        groups.push(TemplateGroup { id, display_name });
    }
    groups
}
