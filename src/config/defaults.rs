//! The embedded default: one demo app run as a local process and one generated user, so that
//! `vestibule serve` works on a fresh machine with nothing else installed.

use super::auth_model::CustomHeaderConfig;
use super::model::*;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Duration;

/// `vestibule_exe` is the binary that serves the demo app (`vestibule demo-app --port N`);
/// `password_hash` is the PHC hash of the generated password for user `admin`.
pub fn embedded_default(vestibule_exe: &Path, password_hash: String) -> Config {
    let demo = AppSpec {
        id: "demo".into(),
        display_name: "Demo app".into(),
        description: Some(
            "A small interactive page that talks to its server over a WebSocket.".into(),
        ),
        logo_url: None,
        logo: Default::default(),
        container_cmd: vec![
            vestibule_exe.display().to_string(),
            "demo-app".into(),
            "--port".into(),
            "{port}".into(),
        ],
        container_image: None,
        container_env: BTreeMap::new(),
        container_volumes: Vec::new(),
        container: Default::default(),
        kubernetes: Default::default(),
        docker: Default::default(),
        port: 0,
        target_path: String::new(),
        http_headers: BTreeMap::new(),
        add_default_http_headers: true,
        access_groups: Vec::new(),
        access_users: Vec::new(),
        access_expressions: Default::default(),
        heartbeat_timeout: Some(Duration::from_secs(600)),
        max_lifetime: None,
        stop_on_logout: true,
        max_instances: Some(1),
        max_total_instances: None,
        process_workdir: None,
        template_group: None,
        parameters: None,
        always_show_switch_instance: false,
        track_app_url: false,
        favicon_path: None,
        pool: None,
        public: false,
        api_only: false,
        seats: None,
    };
    Config {
        source: None,
        store: StoreConfig::Memory,
        proxy: ProxyConfig {
            title: crate::spel::Template::literal("vestibule"),
            logo_url: None,
            body_classes: Vec::new(),
            favicon_path: None,
            landing_page: LandingPage::Portal,
            hide_navbar: false,
            my_apps_mode: MyAppsMode::None,
            notification_message: None,
            template_groups: Vec::new(),
            port: 8080,
            bind_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            authentication: AuthMethod::Simple,
            admin_groups: vec!["admins".into()],
            admin_users: Vec::new(),
            users: vec![UserEntry {
                name: "admin".into(),
                password: PasswordSpec::Argon2(password_hash),
                groups: vec!["admins".into()],
            }],
            ldap: Vec::new(),
            custom_header: CustomHeaderConfig::default(),
            webservice: None,
            container_backend: BackendKind::Process,
            container_wait_time: Duration::from_secs(20),
            seat_wait_time: Duration::from_secs(300),
            heartbeat_rate: Duration::from_secs(10),
            default_max_instances: Some(1),
            max_total_instances: None,
            default_max_lifetime: None,
            default_stop_proxy_on_logout: true,
            stop_proxies_on_shutdown: true,
            recover_running_proxies: false,
            docker: Default::default(),
            process: Default::default(),
            allowed_origins: Vec::new(),
            connections: Default::default(),
            reload: Default::default(),
            app_domain: None,
            same_site_cookie: SameSite::Lax,
            kubernetes: Default::default(),
            specs: vec![demo],
            openid: None,
            saml: None,
            oauth2: None,
        },
        server: ServerConfig {
            secure_cookies: false,
            context_path: String::new(),
            management_port: None,
            frame_options: Default::default(),
            trusted_proxies: Vec::new(),
        },
        ops: Default::default(),
    }
}
