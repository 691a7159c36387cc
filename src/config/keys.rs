//! The catalogue of keys an `application.yml` may hold, and what vestibule does with each.
//!
//! Keys are matched the way Spring Boot (and so ShinyProxy) matches them: ignoring case, dashes
//! and underscores, so `containerBackend`, `container_backend` and `container-backend` are the
//! same key. Messages always use the kebab-case spelling.

/// What vestibule does with a known key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Read into the runtime config.
    Used,
    /// A ShinyProxy setting vestibule does not implement yet: warned about and ignored.
    NotImplemented,
    /// Has no effect in vestibule and needs none: accepted without a word.
    Accepted,
    /// Has no effect in vestibule, and the user should know why.
    Ignored(&'static str),
}

/// What lies below a key.
#[derive(Debug, Clone, Copy)]
pub enum Shape {
    /// A value (or a list of values) whose keys are not checked.
    Leaf,
    /// A mapping with known keys.
    Map(&'static Level),
    /// A list of mappings with known keys.
    List(&'static Level),
    /// One mapping or a list of them (e.g. several LDAP servers).
    MapOrList(&'static Level),
    /// A mapping whose keys are the user's own (environment variables, labels).
    Free,
}

/// How to treat keys a level does not list.
#[derive(Debug, Clone, Copy)]
pub enum Others {
    /// Probably a typo: warn and suggest the closest known key.
    Unknown,
    /// A section of Spring Boot settings: anything else is ignored, for this reason.
    Ignored(&'static str),
}

#[derive(Debug)]
pub struct Key {
    pub name: &'static str,
    pub status: Status,
    pub shape: Shape,
}

#[derive(Debug)]
pub struct Level {
    pub keys: &'static [Key],
    pub others: Others,
}

impl Level {
    pub fn find(&self, written: &str) -> Option<&'static Key> {
        let c = canonical(written);
        self.keys.iter().find(|k| canonical(k.name) == c)
    }
}

/// Spring Boot's relaxed form of a key: lower case, without dashes and underscores.
pub fn canonical(key: &str) -> String {
    key.chars()
        .filter(|c| *c != '-' && *c != '_')
        .flat_map(char::to_lowercase)
        .collect()
}

const fn used(name: &'static str) -> Key {
    Key {
        name,
        status: Status::Used,
        shape: Shape::Leaf,
    }
}

const fn todo(name: &'static str) -> Key {
    Key {
        name,
        status: Status::NotImplemented,
        shape: Shape::Leaf,
    }
}

const fn accepted(name: &'static str) -> Key {
    Key {
        name,
        status: Status::Accepted,
        shape: Shape::Leaf,
    }
}

const fn ignored(name: &'static str, why: &'static str) -> Key {
    Key {
        name,
        status: Status::Ignored(why),
        shape: Shape::Leaf,
    }
}

const fn section(name: &'static str, status: Status, shape: Shape) -> Key {
    Key {
        name,
        status,
        shape,
    }
}

pub static ROOT: Level = Level {
    keys: &[
        section("proxy", Status::Used, Shape::Map(&PROXY)),
        section("server", Status::Used, Shape::Map(&SERVER)),
        section("management", Status::Used, Shape::Map(&MANAGEMENT)),
        section("spring", Status::Used, Shape::Map(&SPRING)),
        section("logging", Status::Accepted, Shape::Map(&LOGGING)),
        // ShinyProxy reads the Kubernetes namespaces it scans for apps at the top level.
        todo("app-namespaces"),
        section("springdoc", Status::Accepted, Shape::Map(&SPRINGDOC)),
    ],
    others: Others::Unknown,
};

pub static PROXY: Level = Level {
    keys: &[
        used("port"),
        used("bind-address"),
        used("title"),
        used("logo-url"),
        used("favicon-path"),
        used("landing-page"),
        used("body-classes"),
        used("default-app-logo-url"),
        used("default-app-logo-width"),
        used("default-app-logo-height"),
        used("default-app-logo-style"),
        used("default-app-logo-classes"),
        todo("allow-transfer-app"),
        todo("version"),
        todo("username-case-sensitive"),
        used("authentication"),
        used("admin-groups"),
        used("admin-users"),
        section("users", Status::Used, Shape::List(&USER)),
        used("container-backend"),
        used("realm-id"),
        used("container-wait-time"),
        todo("container-wait-timeout"),
        used("heartbeat-rate"),
        used("heartbeat-timeout"),
        used("default-max-instances"),
        used("default-always-switch-instance"),
        todo("default-websocket-reconnection-mode"),
        used("default-track-app-url"),
        todo("default-cache-headers-mode"),
        used("max-total-instances"),
        used("default-proxy-max-lifetime"),
        used("default-stop-proxy-on-logout"),
        used("stop-proxies-on-shutdown"),
        used("same-site-cookie"),
        section("specs", Status::Used, Shape::List(&SPEC)),
        used("hide-navbar"),
        used("notification-message"),
        todo("template-path"),
        section(
            "template-groups",
            Status::Used,
            Shape::List(&TEMPLATE_GROUP),
        ),
        used("recover-running-proxies"),
        todo("recover-running-proxies-from-different-config"),
        used("store-mode"),
        used("seat-wait-time"),
        used("usage-stats-url"),
        used("usage-stats-username"),
        used("usage-stats-password"),
        used("usage-stats-table-name"),
        // ShinyProxy evaluates these as SpEL per event; vestibule does not yet.
        todo("usage-stats-attributes"),
        used("usage-stats-micrometer-prefix"),
        section("usage-stats", Status::Used, Shape::List(&USAGE_STATS)),
        todo("usage-stats-hikari"),
        used("log-as-json"),
        used("my-apps-mode"),
        used("container-log-path"),
        used("container-log-s3-access-key"),
        used("container-log-s3-access-secret"),
        used("container-log-s3-endpoint"),
        used("container-log-s3-sse"),
        todo("support"),
        todo("api-security"),
        todo("monitoring"),
        section("docker", Status::Used, Shape::Map(&DOCKER)),
        // vestibule's own: other sites whose pages may open app WebSockets.
        used("allowed-origins"),
        // vestibule's own: a host of its own per instance.
        used("app-domain"),
        // vestibule's own: load balancers whose X-Forwarded-* headers are believed.
        used("trusted-proxies"),
        // vestibule's own: request-head timeout and connection caps.
        section("connections", Status::Used, Shape::Map(&CONNECTIONS)),
        // vestibule's own: reading the file again while serving.
        section("reload", Status::Used, Shape::Map(&RELOAD)),
        // vestibule's own: settings of the process backend.
        section("process", Status::Used, Shape::Map(&PROCESS)),
        section("kubernetes", Status::Used, Shape::Map(&KUBERNETES)),
        todo("ecs"),
        section("ldap", Status::Used, Shape::MapOrList(&LDAP)),
        section("openid", Status::Used, Shape::Map(&OPENID)),
        // Group look-ups in Microsoft Graph, for Azure AD users in more than 200 groups.
        todo("ms-graph"),
        section("oauth2", Status::Used, Shape::Map(&OAUTH2)),
        section("saml", Status::Used, Shape::Map(&SAML)),
        section("custom-header", Status::Used, Shape::Map(&CUSTOM_HEADER)),
        section("webservice", Status::Used, Shape::Map(&WEBSERVICE)),
    ],
    others: Others::Unknown,
};

pub static USAGE_STATS: Level = Level {
    keys: &[
        used("url"),
        used("username"),
        used("password"),
        used("table-name"),
        todo("attributes"),
    ],
    others: Others::Unknown,
};

pub static CONNECTIONS: Level = Level {
    keys: &[
        used("header-read-timeout"),
        used("max-per-address"),
        used("max-total"),
    ],
    others: Others::Unknown,
};

pub static RELOAD: Level = Level {
    keys: &[used("watch"), used("interval"), used("stop-removed-apps")],
    others: Others::Unknown,
};

pub static PROCESS: Level = Level {
    keys: &[used("inherit-env"), used("uid-range")],
    others: Others::Unknown,
};

pub static TEMPLATE_GROUP: Level = Level {
    keys: &[
        used("id"),
        section(
            "properties",
            Status::Used,
            Shape::Map(&TEMPLATE_GROUP_PROPERTIES),
        ),
    ],
    others: Others::Unknown,
};

pub static TEMPLATE_GROUP_PROPERTIES: Level = Level {
    keys: &[used("display-name")],
    others: Others::Ignored("free-form: ShinyProxy's custom templates read them"),
};

pub static PARAMETERS: Level = Level {
    keys: &[
        section(
            "definitions",
            Status::Used,
            Shape::List(&PARAMETER_DEFINITION),
        ),
        section(
            "value-sets",
            Status::Used,
            Shape::List(&PARAMETER_VALUE_SET),
        ),
        // Read to say that its Thymeleaf is not run.
        used("template"),
    ],
    others: Others::Unknown,
};

pub static PARAMETER_DEFINITION: Level = Level {
    keys: &[
        used("id"),
        used("display-name"),
        used("description"),
        used("default-value"),
        section(
            "value-names",
            Status::Used,
            Shape::List(&PARAMETER_VALUE_NAME),
        ),
    ],
    others: Others::Unknown,
};

pub static PARAMETER_VALUE_NAME: Level = Level {
    keys: &[used("value"), used("name")],
    others: Others::Unknown,
};

pub static PARAMETER_VALUE_SET: Level = Level {
    keys: &[
        used("name"),
        section(
            "access-control",
            Status::Used,
            Shape::Map(&PARAMETER_ACCESS),
        ),
        section("values", Status::Used, Shape::Free),
    ],
    others: Others::Unknown,
};

pub static PARAMETER_ACCESS: Level = Level {
    keys: &[
        used("groups"),
        used("users"),
        used("expression"),
        used("strict-expression"),
    ],
    others: Others::Unknown,
};

pub static USER: Level = Level {
    keys: &[used("name"), used("password"), used("groups")],
    others: Others::Unknown,
};

pub static SPEC: Level = Level {
    keys: &[
        used("id"),
        used("display-name"),
        used("description"),
        used("logo-url"),
        used("logo-width"),
        used("logo-height"),
        used("logo-style"),
        used("logo-classes"),
        used("container-image"),
        used("container-cmd"),
        section("container-env", Status::Used, Shape::Free),
        used("container-volumes"),
        used("port"),
        used("target-path"),
        used("access-groups"),
        used("access-users"),
        used("heartbeat-timeout"),
        used("max-lifetime"),
        used("stop-on-logout"),
        used("max-instances"),
        used("max-total-instances"),
        used("process-workdir"),
        // vestibule's own: shared, request-balanced instances, and who may reach them.
        section("pool", Status::Used, Shape::Map(&POOL)),
        used("public"),
        used("api-only"),
        used("access-expression"),
        used("access-strict-expression"),
        // vestibule's own: the same rules written in CEL.
        used("access-cel"),
        used("access-strict-cel"),
        used("container-env-file"),
        used("container-network"),
        used("container-network-connections"),
        used("container-memory-request"),
        used("container-memory-limit"),
        used("container-cpu-request"),
        used("container-cpu-limit"),
        used("container-privileged"),
        used("container-dns"),
        todo("additional-port-mappings"),
        todo("resource-name"),
        used("minimum-seats-available"),
        used("seats-per-container"),
        used("allow-container-re-use"),
        used("scale-down-delay"),
        used("kubernetes-pod-patches"),
        used("kubernetes-additional-manifests"),
        used("kubernetes-additional-persistent-manifests"),
        todo("kubernetes-authorized-pod-patches"),
        todo("kubernetes-authorized-additional-manifests"),
        todo("kubernetes-authorized-additional-persistent-manifests"),
        section("http-headers", Status::Used, Shape::Free),
        used("add-default-http-headers"),
        todo("websocket-reconnection-mode"),
        section("parameters", Status::Used, Shape::Map(&PARAMETERS)),
        used("docker-device-requests"),
        used("docker-runtime"),
        used("docker-user"),
        used("docker-ipc"),
        used("docker-group-add"),
        used("docker-swarm-secrets"),
        used("docker-swarm-constraints"),
        todo("docker-registry-domain"),
        todo("docker-registry-username"),
        todo("docker-registry-password"),
        used("labels"),
        todo("external-url"),
        used("template-group"),
        used("favicon-path"),
        todo("template-properties"),
        used("always-show-switch-instance"),
        used("track-app-url"),
        todo("cache-headers-mode"),
        todo("shiny-force-full-reload"),
        todo("hide-navbar-on-main-page-link"),
        todo("support-mail-to-address"),
        todo("support-mail-subject"),
        todo("custom-app-details"),
        // The ECS backend's settings (proxy.ecs is not implemented either).
        todo("ecs-task-role"),
        todo("ecs-execution-role"),
        todo("ecs-cpu-architecture"),
        todo("ecs-operation-system-family"),
        todo("ecs-ephemeral-storage-size"),
        todo("ecs-efs-volumes"),
        todo("ecs-bind-volumes"),
        todo("ecs-managed-secrets"),
        todo("ecs-enable-execute-command"),
        todo("ecs-repository-credentials-parameter"),
        todo("ecs-readonly-root-filesystem"),
    ],
    others: Others::Unknown,
};

pub static POOL: Level = Level {
    keys: &[
        used("min-instances"),
        used("max-instances"),
        used("target-concurrency"),
        used("scale-down-delay"),
        used("session-affinity"),
        used("stable-window"),
        used("queue-limit"),
        used("client-rate-limit"),
    ],
    others: Others::Unknown,
};

pub static DOCKER: Level = Level {
    keys: &[
        used("url"),
        todo("cert-path"),
        used("internal-networking"),
        used("port-range-start"),
        used("port-range-max"),
        used("image-pull-policy"),
        used("default-container-network"),
        todo("privileged"),
        used("service-wait-time"),
        todo("container-protocol"),
        todo("target-url"),
        todo("target-bind-ip"),
        todo("loki-url"),
    ],
    others: Others::Unknown,
};

pub static KUBERNETES: Level = Level {
    keys: &[
        used("url"),
        used("cert-path"),
        used("namespace"),
        used("internal-networking"),
        used("image-pull-policy"),
        used("image-pull-secret"),
        used("image-pull-secrets"),
        used("node-selector"),
        used("pod-wait-time"),
        ignored(
            "cluster-domain",
            "vestibule reaches pods by IP and Services by node port or cluster IP, so it needs no cluster DNS domain; this key is ignored",
        ),
        // vestibule's own: NodePort (ShinyProxy's behaviour) or ClusterIP.
        used("service-type"),
        todo("api-version"),
        todo("debug-patches"),
        todo("privileged"),
        todo("container-protocol"),
    ],
    others: Others::Unknown,
};

pub static LDAP: Level = Level {
    keys: &[
        used("url"),
        used("starttls"),
        used("user-dn-pattern"),
        used("user-search-base"),
        used("user-search-filter"),
        used("group-search-base"),
        used("group-search-filter"),
        used("manager-dn"),
        used("manager-password"),
        // vestibule's own: a private CA for ldaps:// and StartTLS.
        used("ca-cert"),
    ],
    others: Others::Unknown,
};

pub static OPENID: Level = Level {
    keys: &[
        used("issuer"),
        used("auth-url"),
        used("token-url"),
        used("jwks-url"),
        used("userinfo-url"),
        used("client-id"),
        used("client-secret"),
        used("scopes"),
        used("username-attribute"),
        used("roles-claim"),
        used("logout-url"),
        // vestibule always uses PKCE (S256); providers that do not require it accept it.
        accepted("with-pkce"),
        todo("client-authentication-method"),
        todo("include-default-scopes"),
        todo("jwks-signature-algorithm"),
        todo("enforce-https-redirect-uri"),
        todo("ignore-session-expire"),
    ],
    others: Others::Unknown,
};

pub static OAUTH2: Level = Level {
    keys: &[
        used("jwks-url"),
        used("issuer"),
        used("resource-id"),
        used("username-attribute"),
        used("roles-claim"),
    ],
    others: Others::Unknown,
};

pub static SAML: Level = Level {
    keys: &[
        used("idp-metadata-url"),
        used("app-entity-id"),
        used("app-base-url"),
        used("name-attribute"),
        used("roles-attribute"),
        used("keystore"),
        used("keystore-password"),
        used("encryption-cert-name"),
        used("encryption-cert-password"),
        // vestibule's own: the SP key and certificate as PEM files instead of a keystore.
        used("certificate"),
        used("certificate-private-key"),
        used("force-authn"),
        used("logout-url"),
        used("logout-method"),
        used("log-attributes"),
        used("max-authentication-age"),
    ],
    others: Others::Unknown,
};

pub static CUSTOM_HEADER: Level = Level {
    keys: &[
        used("username-header-name"),
        used("groups-header-name"),
        // vestibule's own: where the login proxy's requests come from.
        used("trusted-networks"),
    ],
    others: Others::Unknown,
};

pub static WEBSERVICE: Level = Level {
    keys: &[
        used("authentication-url"),
        used("authentication-request-body"),
        // A SpEL expression over the JSON answer, giving the user's groups.
        todo("groups-expression"),
    ],
    others: Others::Unknown,
};

const SPRING_IGNORED: &str = "a Spring Boot setting that vestibule does not use; ignored";

pub static SERVER: Level = Level {
    keys: &[
        used("secure-cookies"),
        used("frame-options"),
        section("servlet", Status::Used, Shape::Map(&SERVER_SERVLET)),
        used("forward-headers-strategy"),
        section("ssl", Status::Used, Shape::Map(&SERVER_SSL)),
        ignored(
            "port",
            "vestibule listens on proxy.port; server.port is ignored",
        ),
        ignored(
            "use-forward-headers",
            "removed from Spring Boot, and ShinyProxy only warns about it: use \
             server.forward-headers-strategy; ignored",
        ),
    ],
    others: Others::Ignored(SPRING_IGNORED),
};

/// Spring Boot's TLS keys. Unlike the rest of `server.*`, nothing here is ignored: a TLS setting
/// vestibule cannot honour is an error, and an unknown key is a typo to report.
pub static SERVER_SSL: Level = Level {
    keys: &[
        used("enabled"),
        used("key-store"),
        used("key-store-password"),
        used("key-store-type"),
        used("key-alias"),
        used("key-password"),
        used("certificate"),
        used("certificate-private-key"),
        used("enabled-protocols"),
        used("client-auth"),
        used("trust-store"),
        used("ciphers"),
        // vestibule's own: a plain-HTTP port that redirects to HTTPS.
        used("redirect-http-port"),
    ],
    others: Others::Unknown,
};

pub static SERVER_SERVLET: Level = Level {
    keys: &[
        used("context-path"),
        section("session", Status::Accepted, Shape::Map(&SERVER_SESSION)),
    ],
    others: Others::Ignored(SPRING_IGNORED),
};

pub static SERVER_SESSION: Level = Level {
    keys: &[todo("timeout")],
    others: Others::Ignored(SPRING_IGNORED),
};

pub static MANAGEMENT: Level = Level {
    keys: &[section(
        "server",
        Status::Used,
        Shape::Map(&MANAGEMENT_SERVER),
    )],
    others: Others::Ignored(
        "management settings other than management.server.port are ignored; \
         /actuator/health and /actuator/prometheus are always served",
    ),
};

pub static MANAGEMENT_SERVER: Level = Level {
    keys: &[used("port")],
    others: Others::Ignored(SPRING_IGNORED),
};

pub static SPRING: Level = Level {
    keys: &[
        section("servlet", Status::Accepted, Shape::Map(&SPRING_SERVLET)),
        section("session", Status::Used, Shape::Map(&SPRING_SESSION)),
        // Spring Boot 2's place for the Redis settings.
        section("redis", Status::Used, Shape::Map(&REDIS)),
        section("data", Status::Used, Shape::Map(&SPRING_DATA)),
        accepted("application"),
        section("config", Status::Accepted, Shape::Map(&SPRING_CONFIG)),
        // The mail server of ShinyProxy's "report an issue" form (proxy.support).
        todo("mail"),
    ],
    others: Others::Ignored(SPRING_IGNORED),
};

pub static SPRING_CONFIG: Level = Level {
    keys: &[ignored(
        "location",
        "vestibule reads the file named by --config; \
         spring.config.location is ignored",
    )],
    others: Others::Ignored(SPRING_IGNORED),
};

pub static SPRING_DATA: Level = Level {
    keys: &[section("redis", Status::Used, Shape::Map(&REDIS))],
    others: Others::Ignored(SPRING_IGNORED),
};

pub static SPRING_SESSION: Level = Level {
    keys: &[used("store-type")],
    others: Others::Ignored(SPRING_IGNORED),
};

pub static REDIS: Level = Level {
    keys: &[
        used("url"),
        used("host"),
        used("port"),
        used("username"),
        used("password"),
        // `true` (Spring Boot 2) or `enabled: true` below it (Spring Boot 3).
        section("ssl", Status::Used, Shape::Map(&REDIS_SSL)),
        used("database"),
        used("timeout"),
        section("sentinel", Status::Used, Shape::Map(&REDIS_SENTINEL)),
    ],
    others: Others::Ignored(
        "a Spring Data Redis setting for Java clients (pools, client type); vestibule's own \
         client ignores it",
    ),
};

pub static REDIS_SSL: Level = Level {
    keys: &[used("enabled")],
    others: Others::Ignored(SPRING_IGNORED),
};

pub static REDIS_SENTINEL: Level = Level {
    keys: &[used("master"), used("nodes"), used("password")],
    others: Others::Ignored(SPRING_IGNORED),
};

pub static SPRING_SERVLET: Level = Level {
    keys: &[section(
        "multipart",
        Status::Accepted,
        Shape::Map(&MULTIPART),
    )],
    others: Others::Ignored(SPRING_IGNORED),
};

pub static SPRINGDOC: Level = Level {
    keys: &[],
    others: Others::Ignored(
        "vestibule always publishes its OpenAPI document at /api/openapi.json and serves no \
         Swagger UI; springdoc settings are ignored",
    ),
};

const STREAMED: &str = "uploads are streamed to the app, so Spring's upload limits do not apply";

pub static MULTIPART: Level = Level {
    // Accepted silently: the seed sets them, and streaming makes them moot.
    keys: &[
        accepted("max-file-size"),
        accepted("max-request-size"),
        accepted("enabled"),
        accepted("file-size-threshold"),
        accepted("location"),
    ],
    others: Others::Ignored(STREAMED),
};

const LOGS: &str = "vestibule logs to standard output; choose what is logged with VESTIBULE_LOG, \
                    and JSON lines with proxy.log-as-json";

pub static LOGGING: Level = Level {
    keys: &[
        ignored("file", LOGS),
        ignored("level", LOGS),
        ignored("pattern", LOGS),
        ignored("config", LOGS),
    ],
    others: Others::Ignored(LOGS),
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relaxed_names_match() {
        assert_eq!(
            PROXY.find("containerBackend").map(|k| k.name),
            Some("container-backend")
        );
        assert_eq!(
            PROXY.find("container_backend").map(|k| k.name),
            Some("container-backend")
        );
        assert!(PROXY.find("heartbeat-timout").is_none());
    }

    #[test]
    fn no_level_lists_a_key_twice() {
        fn check(level: &Level) {
            for (i, k) in level.keys.iter().enumerate() {
                for other in &level.keys[i + 1..] {
                    assert_ne!(canonical(k.name), canonical(other.name), "{}", k.name);
                }
                match k.shape {
                    Shape::Map(l) | Shape::List(l) | Shape::MapOrList(l) => check(l),
                    Shape::Leaf | Shape::Free => {}
                }
            }
        }
        check(&ROOT);
    }
}
