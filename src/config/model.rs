//! The checked runtime configuration. Everything here has been validated and defaulted; the
//! rest of the server never sees the raw file shape.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use super::check_docker::{
    DeviceRequest, DockerSettings, DockerSpecSettings, PullPolicy, SwarmSecret,
};
pub use super::container::{ContainerSettings, CpuQuantity, MemoryQuantity};
pub use super::kubernetes::{CERT_FILES, KubernetesSettings, KubernetesSpecSettings, ServiceType};

#[derive(Debug, Clone)]
pub struct Config {
    /// The file this config came from, if any (`None` for the embedded default).
    pub source: Option<PathBuf>,
    pub proxy: ProxyConfig,
    pub server: ServerConfig,
    /// Where sessions, tokens and other shared state live.
    pub store: StoreConfig,
    /// Usage statistics, logs and TLS: how the server is run rather than what it serves.
    pub ops: OpsConfig,
}

/// `proxy.store-mode` with Spring's Redis keys.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum StoreConfig {
    /// This process's memory: one replica.
    #[default]
    Memory,
    /// Redis, shared by every replica.
    Redis(RedisSettings),
}

#[derive(Debug, Clone, PartialEq)]
pub struct RedisSettings {
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub tls: bool,
    pub database: u8,
    /// Found through Redis Sentinel rather than at `host`.
    pub sentinel: Option<RedisSentinel>,
    /// How long one command may take before the store counts as unavailable.
    pub timeout: std::time::Duration,
}

impl Default for RedisSettings {
    /// Spring's defaults, but a 10 s command timeout rather than 60 s: a hung Redis should
    /// make a login fail in seconds, not a minute.
    fn default() -> Self {
        Self {
            host: "localhost".into(),
            port: 6379,
            username: None,
            password: None,
            tls: false,
            database: 0,
            sentinel: None,
            timeout: std::time::Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RedisSentinel {
    /// The name the sentinels monitor.
    pub master: String,
    pub nodes: Vec<(String, u16)>,
    pub password: Option<Secret>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct OpsConfig {
    /// `proxy.usage-stats-*` and `proxy.usage-stats`.
    pub usage_stats: super::check_usage::UsageStatsConfig,
    /// `proxy.log-as-json`.
    pub log_as_json: bool,
    /// `server.ssl.*`; `None` serves plain HTTP.
    pub tls: Option<super::check_tls::TlsSettings>,
    /// `proxy.container-log-path` and `proxy.container-log-s3-*`: each instance's output kept.
    pub container_logs: Option<super::check_logging::ContainerLogs>,
    /// The config file as it is in effect (after `${VAR}`s and overrides), secrets masked, for
    /// the admin console; empty when the config came from no file.
    pub masked: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// `server.secure-cookies`: always mark cookies Secure (they are also Secure whenever a request
    /// arrives with `X-Forwarded-Proto: https`).
    pub secure_cookies: bool,
    /// `management.server.port`; `None` means health is served on the main port only.
    pub management_port: Option<u16>,
    /// `server.frame-options`: who may frame portal pages.
    pub frame_options: super::FrameOptions,
    /// Peers whose `X-Forwarded-*` headers are believed (`proxy.trusted-proxies`, or the private
    /// ranges with `server.forward-headers-strategy: native`); empty believes nobody.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// `server.servlet.context-path` without its trailing `/` (`/sp`), or empty: everything
    /// is served under it, as behind an ingress at a sub-path.
    pub context_path: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    None,
    Simple,
    OpenId,
    Ldap,
    CustomHeader,
    Webservice,
    Saml,
}

impl AuthMethod {
    /// Whether users log in with a password vestibule checks (the form and HTTP Basic).
    pub fn takes_passwords(self) -> bool {
        matches!(self, Self::Simple | Self::Ldap | Self::Webservice)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Process,
    Docker,
    DockerSwarm,
    Kubernetes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    Lax,
    Strict,
    None,
}

/// A password as written in `proxy.users[].password`.
#[derive(Clone, PartialEq, Eq)]
pub enum PasswordSpec {
    /// A PHC string starting with `$argon2`.
    Argon2(String),
    /// A bcrypt hash starting with `$2a$`, `$2b$` or `$2y$`.
    Bcrypt(String),
    /// Plain text (accepted with a warning, as ShinyProxy configs use it).
    Plain(String),
}

impl std::fmt::Debug for PasswordSpec {
    // Never print a password, not even a hash, into logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PasswordSpec::Argon2(_) => f.write_str("Argon2(<redacted>)"),
            PasswordSpec::Bcrypt(_) => f.write_str("Bcrypt(<redacted>)"),
            PasswordSpec::Plain(_) => f.write_str("Plain(<redacted>)"),
        }
    }
}

/// `proxy.openid.*`: where the identity provider is and how its claims map to users.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenIdConfig {
    /// vestibule's own key: discover the endpoints from `<issuer>/.well-known/openid-configuration`
    /// and require ID tokens to name this issuer.
    pub issuer: Option<String>,
    /// Explicit endpoints (ShinyProxy's keys); each overrides the discovered one.
    pub auth_url: Option<String>,
    pub token_url: Option<String>,
    pub jwks_url: Option<String>,
    pub userinfo_url: Option<String>,
    pub client_id: String,
    pub client_secret: Secret,
    /// Requested besides `openid`.
    pub scopes: Vec<String>,
    /// The claim that names the user (ShinyProxy's default: `email`).
    pub username_attribute: String,
    /// The claim that holds the user's groups: a list, a comma-separated string, or a dotted
    /// path into nested objects (`realm_access.roles`).
    pub roles_claim: Option<String>,
    /// Where the browser goes after logout (RP-initiated logout at the provider).
    pub logout_url: Option<String>,
}

/// `proxy.oauth2.*`: accept `Authorization: Bearer <JWT>` signed by a key in `jwks_url`.
#[derive(Debug, Clone, PartialEq)]
pub struct OAuth2Config {
    pub jwks_url: String,
    /// When set, tokens must name this issuer (`iss`).
    pub issuer: Option<String>,
    /// `resource-id`: when set, tokens must be meant for it (`aud`).
    pub audience: Option<String>,
    pub username_attribute: String,
    pub roles_claim: Option<String>,
}

/// A secret from the config (client secrets, manager passwords): never printed, not even in debug logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// `my-apps-mode`: where the portal shows the user's running instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum MyAppsMode {
    None,
    Inline,
    Modal,
}

/// ShinyProxy's `landing-page`: what a user who opens `/` gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LandingPage {
    /// The portal (`/`).
    Portal,
    /// The app, when the user may open exactly one.
    SingleApp,
    /// The first app (in the file's order) the user may open.
    FirstApp,
    /// Any other page or URL.
    Url(String),
}

/// How a portal tile draws an app's logo (see `check_portal::app_logo`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct AppLogo {
    pub width: Option<String>,
    pub height: Option<String>,
    pub style: Option<String>,
    pub classes: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateGroup {
    pub id: String,
    pub display_name: String,
}

#[derive(Debug, Clone)]
pub struct UserEntry {
    pub name: String,
    pub password: PasswordSpec,
    pub groups: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// May read the user and the host (`#{serverName == 'a' ? 'A' : 'B'}`), per page.
    pub title: crate::spel::Template,
    pub logo_url: Option<crate::spel::Template>,
    /// A file served as `/favicon.ico`.
    pub favicon_path: Option<std::path::PathBuf>,
    /// What `/` shows.
    pub landing_page: LandingPage,
    /// `my-apps-mode`.
    pub my_apps_mode: MyAppsMode,
    /// `hide-navbar`: pages without the top bar (also `?sp_hide_navbar=true` per request).
    pub hide_navbar: bool,
    /// `body-classes`: CSS classes every page's `<body>` gets (for a site's own stylesheet).
    pub body_classes: Vec<String>,
    /// `notification-message`: HTML from the config shown above the apps.
    pub notification_message: Option<String>,
    /// `template-groups`: headings the portal groups apps under (a spec's `template-group`).
    pub template_groups: Vec<TemplateGroup>,
    pub port: u16,
    pub bind_address: IpAddr,
    pub authentication: AuthMethod,
    pub admin_groups: Vec<String>,
    pub admin_users: Vec<String>,
    pub users: Vec<UserEntry>,
    /// `proxy.ldap`: the directory servers, tried in order.
    pub ldap: Vec<super::LdapServer>,
    pub custom_header: super::CustomHeaderConfig,
    pub webservice: Option<super::WebserviceConfig>,
    pub container_backend: BackendKind,
    /// Total time for an app to answer HTTP 200/30x before its launch fails.
    pub container_wait_time: Duration,
    /// `seat-wait-time`: how long a launch waits for a free seat.
    pub seat_wait_time: Duration,
    pub heartbeat_rate: Duration,
    /// `None` = unlimited (ShinyProxy: -1).
    pub default_max_instances: Option<u32>,
    pub max_total_instances: Option<u32>,
    pub default_max_lifetime: Option<Duration>,
    pub default_stop_proxy_on_logout: bool,
    pub stop_proxies_on_shutdown: bool,
    /// `recover-running-proxies`: adopt the instances a previous run left running.
    pub recover_running_proxies: bool,
    /// `proxy.docker.*`.
    pub docker: DockerSettings,
    /// `proxy.allowed-origins` (vestibule's own): other origins whose pages may open app
    /// WebSockets, normalised as browsers send `Origin`.
    pub allowed_origins: Vec<String>,
    /// `proxy.app-domain` (vestibule's own): each instance is served at
    /// `<instance-id>.<app-domain>`, an origin of its own, so app code cannot act on the portal.
    pub app_domain: Option<String>,
    /// `proxy.connections.*` (vestibule's own).
    pub connections: super::ConnectionLimits,
    /// `proxy.process.*` (vestibule's own).
    pub process: super::ProcessSettings,
    /// `proxy.reload.*` (vestibule's own).
    pub reload: super::ReloadSettings,
    pub same_site_cookie: SameSite,
    /// `proxy.kubernetes.*`; defaults unless the Kubernetes backend is selected.
    pub kubernetes: KubernetesSettings,
    pub specs: Vec<AppSpec>,
    /// `proxy.openid`, present exactly when `authentication: openid`.
    pub openid: Option<OpenIdConfig>,
    /// `proxy.oauth2`: bearer JWTs from an OAuth 2 authorization server, for scripts.
    pub oauth2: Option<OAuth2Config>,
    /// `proxy.saml`, present exactly when `authentication: saml`.
    pub saml: Option<super::SamlConfig>,
}

#[derive(Debug, Clone)]
pub struct AppSpec {
    pub id: String,
    pub display_name: String,
    pub description: Option<String>,
    pub logo_url: Option<String>,
    /// `logo-width`, `-height`, `-style`, `-classes` (else the `default-app-logo-*` ones).
    pub logo: AppLogo,
    pub container_cmd: Vec<String>,
    pub container_image: Option<String>,
    pub container_env: BTreeMap<String, String>,
    pub container_volumes: Vec<String>,
    /// Resources, privilege and labels for container backends (empty for local processes).
    pub container: ContainerSettings,
    /// Pod patches and additional manifests (Kubernetes backend only).
    pub kubernetes: KubernetesSpecSettings,
    /// Keys only the Docker backends read.
    pub docker: DockerSpecSettings,
    /// The port the app listens on inside its container. The process backend ignores it and
    /// allocates a free host port instead.
    pub port: u16,
    /// Path inside the app that the proxy forwards to; "" or "/" for the root.
    pub target_path: String,
    /// `http-headers`: sent to the app with every request, `#{proxy.userId}` filled in.
    pub http_headers: BTreeMap<String, super::Template>,
    /// `add-default-http-headers`: send `X-SP-UserId` and `X-SP-UserGroups` (default true).
    pub add_default_http_headers: bool,
    pub access_groups: Vec<String>,
    pub access_users: Vec<String>,
    /// `access-expression` / `access-cel` (alternatives) and their strict twins (all must hold).
    pub access_expressions: crate::config::access::AccessExpressions,
    /// Resolved: the spec's own value, else the proxy default. `None` disables culling.
    pub heartbeat_timeout: Option<Duration>,
    pub max_lifetime: Option<Duration>,
    pub stop_on_logout: bool,
    /// Instances per user of this app; `None` = unlimited.
    pub max_instances: Option<u32>,
    /// `max-total-instances` on a spec: instances of this app for all users together; `None` =
    /// unlimited.
    pub max_total_instances: Option<u32>,
    /// Process backend only: the directory the app is started in (a fresh per-instance
    /// directory when unset).
    pub process_workdir: Option<PathBuf>,
    /// `track-app-url` (else `proxy.default-track-app-url`): the app's own path is mirrored into
    /// the browser's address, so a reload or a shared link opens the same page of the app.
    pub track_app_url: bool,
    /// `always-show-switch-instance`: the portal's tile asks which instance to open.
    pub always_show_switch_instance: bool,
    /// `template-group`: the portal heading this app's tile is shown under.
    pub template_group: Option<String>,
    /// `parameters`: values the user picks before launch.
    pub parameters: Option<super::parameters::Parameters>,
    /// `favicon-path`: the icon of this app's page (else the global one).
    pub favicon_path: Option<PathBuf>,
    /// `pool`: instances shared by everyone who may open the app, balanced per request and
    /// scaled with load; `None`: each user gets an instance of their own.
    pub pool: Option<PoolSettings>,
    /// `public`: served to anyone, without login (pools only: anonymous visitors share them).
    pub public: bool,
    /// `api-only`: reached with API tokens and HTTP Basic only, never with a browser session.
    pub api_only: bool,
    /// ShinyProxy's pre-started, shared containers: `minimum-seats-available` and its keys.
    pub seats: Option<SeatSettings>,
}

/// ShinyProxy 3's seats: containers started ahead of time, each shared by
/// `seats-per-container` users, so a launch claims a free seat instead of waiting for a start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatSettings {
    /// Free seats to keep ready (0 is valid: seats are still shared, started on demand).
    pub minimum_available: u32,
    pub per_container: u32,
    /// `false`: a container serves one user, then it is replaced.
    pub allow_reuse: bool,
    /// How long surplus containers stay before they are removed (ShinyProxy counts from the
    /// last scale-up, in whole minutes).
    pub scale_down_delay: Duration,
}

/// A spec's `pool` block: how many shared instances to run and when to add or remove one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSettings {
    /// Kept running with no load; 0 lets the pool scale to zero.
    pub min_instances: u32,
    pub max_instances: u32,
    /// In-flight requests per instance the scaler aims for.
    pub target_concurrency: u32,
    /// How long a surplus must last before an instance is removed.
    pub scale_down_delay: Duration,
    /// A cookie keeps a browser on one instance (for apps with per-session state).
    pub session_affinity: bool,
    /// The window the load is averaged over for steady scaling (vestibule's own); bursts are
    /// judged over a tenth of it.
    pub stable_window: Duration,
    /// Requests held while no instance is ready; more are refused at once with 503.
    pub queue_limit: usize,
    /// Requests per minute one client address may make (public APIs); `None`: no limit.
    pub client_rate_limit: Option<std::num::NonZeroU32>,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            min_instances: 0,
            max_instances: 4,
            target_concurrency: 10,
            scale_down_delay: Duration::from_secs(60),
            session_affinity: false,
            stable_window: Duration::from_secs(60),
            queue_limit: 1000,
            client_rate_limit: None,
        }
    }
}

impl AppSpec {
    /// Whether a user with these groups may open this app: every strict expression must hold;
    /// then any match of groups, users or expressions grants access; with none set, everyone
    /// may (ShinyProxy's rules). `server_name` is the host the request came through.
    pub fn allows(&self, user: &str, groups: &[String], server_name: Option<&str>) -> bool {
        let subject = crate::config::access::Subject {
            user,
            groups,
            server_name,
        };
        crate::config::access::rules_allow(
            &self.access_groups,
            &self.access_users,
            &self.access_expressions,
            &subject,
        )
    }
}

impl ProxyConfig {
    pub fn spec(&self, id: &str) -> Option<&AppSpec> {
        self.specs.iter().find(|s| s.id == id)
    }

    pub fn is_admin(&self, user: &str, groups: &[String]) -> bool {
        self.admin_users.iter().any(|u| u == user)
            || self
                .admin_groups
                .iter()
                .any(|g| groups.iter().any(|ug| ug.eq_ignore_ascii_case(g)))
    }
}
