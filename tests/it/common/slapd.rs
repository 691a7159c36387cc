//! A real OpenLDAP server (Debian's `slapd`) for one test: its own slapd.conf and database in
//! a temporary directory, on a free 127.0.0.1 port, seeded with users and groups by `ldapadd`.
//! Nothing system-wide is read or changed.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::time::Instant;

pub const BASE_DN: &str = "dc=example,dc=org";
pub const ADMIN_DN: &str = "cn=admin,dc=example,dc=org";
pub const ADMIN_PASSWORD: &str = "manager secret";

/// alice (analysts), bob (analysts, admins), carol (no group); each password is `<name>-pw`.
pub const SEED: &str = "\
dn: dc=example,dc=org
objectClass: dcObject
objectClass: organization
o: Example
dc: example

dn: ou=people,dc=example,dc=org
objectClass: organizationalUnit
ou: people

dn: ou=groups,dc=example,dc=org
objectClass: organizationalUnit
ou: groups

dn: uid=alice,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: alice
cn: Alice
sn: A
userPassword: alice-pw

dn: uid=bob,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: bob
cn: Bob
sn: B
userPassword: bob-pw

dn: uid=carol,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: carol
cn: Carol
sn: C
userPassword: carol-pw

dn: cn=analysts,ou=groups,dc=example,dc=org
objectClass: groupOfUniqueNames
cn: analysts
uniqueMember: uid=alice,ou=people,dc=example,dc=org
uniqueMember: uid=bob,ou=people,dc=example,dc=org

dn: cn=admins,ou=groups,dc=example,dc=org
objectClass: groupOfUniqueNames
cn: admins
uniqueMember: uid=bob,ou=people,dc=example,dc=org
";

pub use super::ports::free_port;

pub struct Slapd {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
    /// With TLS: the PEM file of the private CA that signed the server's certificate.
    pub ca_file: Option<PathBuf>,
    /// With TLS: the port of the `ldaps://` listener (TLS from the first byte).
    pub ldaps_port: Option<u16>,
}

fn tool(name: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        let p = PathBuf::from(dir).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!(
        "{name} is not installed; run scripts/install-test-deps.sh (Debian packages slapd and \
         ldap-utils)"
    );
}

impl Slapd {
    /// Starts slapd and loads [`SEED`].
    pub fn start() -> Self {
        Self::start_with(false)
    }

    /// One server for the whole test binary, for tests that only read the seeded directory
    /// (starting slapd and loading the seed costs about a second each time).
    pub fn shared() -> &'static Slapd {
        static SHARED: std::sync::OnceLock<Slapd> = std::sync::OnceLock::new();
        SHARED.get_or_init(Slapd::start)
    }

    /// As [`Slapd::start`], offering StartTLS with a certificate for 127.0.0.1 from a private
    /// CA made with openssl, and an `ldaps://` listener with the same certificate.
    pub fn start_with_tls() -> Self {
        Self::start_with(true)
    }

    fn start_with(tls: bool) -> Self {
        let slapd = tool("slapd");
        let port = free_port();
        let ldaps_port = tls.then(free_port);
        let dir =
            std::env::temp_dir().join(format!("vestibule-slapd-{}-{port}", std::process::id()));
        let data = dir.join("data");
        std::fs::create_dir_all(&data).expect("slapd dir");
        // Anonymous clients may only bind; reading entries needs a login (the manager or the
        // user), as in most real directories.
        let (tls_conf, ca_file) = if tls {
            let ca = super::certs::make_certificates(&dir);
            let conf = format!(
                "TLSCACertificateFile {ca}\nTLSCertificateFile {d}/server.pem\n\
                 TLSCertificateKeyFile {d}/server.key\n",
                ca = ca.display(),
                d = dir.display()
            );
            (conf, Some(ca))
        } else {
            (String::new(), None)
        };
        let conf = format!(
            "include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile {dir}/slapd.pid
{tls_conf}database mdb
maxsize 10485760
suffix \"{BASE_DN}\"
rootdn \"{ADMIN_DN}\"
rootpw \"{ADMIN_PASSWORD}\"
directory {data}
access to attrs=userPassword by anonymous auth by * none
access to * by users read by anonymous auth
",
            dir = dir.display(),
            data = data.display(),
        );
        let conf_path = dir.join("slapd.conf");
        std::fs::write(&conf_path, conf).expect("write slapd.conf");
        let mut listeners = format!("ldap://127.0.0.1:{port}/");
        if let Some(p) = ldaps_port {
            listeners.push_str(&format!(" ldaps://127.0.0.1:{p}/"));
        }
        let child = super::keeper::spawn(move || {
            super::keeper::dies_with_us(&mut Command::new(slapd))
                .arg("-f")
                .arg(&conf_path)
                .arg("-h")
                .arg(&listeners)
                .arg("-d")
                .arg("0")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
        })
        .expect("start slapd");
        let mut me = Self {
            child: Some(child),
            port,
            dir,
            ca_file,
            ldaps_port,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        let listening = |p: u16| TcpStream::connect(("127.0.0.1", p)).is_ok();
        while !(listening(port) && ldaps_port.is_none_or(listening)) {
            if let Some(Ok(Some(status))) = me.child.as_mut().map(|c| c.try_wait()) {
                panic!("slapd exited at start: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "slapd did not listen on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        me.ldapadd(SEED);
        me
    }

    /// The URL with the base DN, as ShinyProxy's `proxy.ldap.url` is written.
    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}/{BASE_DN}", self.port)
    }

    /// The `ldaps://` URL with the base DN; only for a server started with TLS.
    pub fn ldaps_url(&self) -> String {
        let port = self.ldaps_port.expect("slapd was started without TLS");
        format!("ldaps://127.0.0.1:{port}/{BASE_DN}")
    }

    pub fn ldapadd(&self, ldif: &str) {
        let file = self.dir.join("seed.ldif");
        std::fs::write(&file, ldif).expect("write ldif");
        let out = Command::new(tool("ldapadd"))
            .args(["-x", "-H", &format!("ldap://127.0.0.1:{}", self.port)])
            .args(["-D", ADMIN_DN, "-w", ADMIN_PASSWORD, "-f"])
            .arg(&file)
            .output()
            .expect("run ldapadd");
        assert!(
            out.status.success(),
            "ldapadd failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Stops the server (the directory becomes unreachable).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
