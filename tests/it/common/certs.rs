//! A private CA made with openssl, and certificates for 127.0.0.1 and for clients signed by it,
//! for tests that need real TLS peers (slapd, an API server asking for a client certificate).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl (scripts/install-test-deps.sh installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (`ca.pem`, `ca.key`) and a server certificate for 127.0.0.1 (`server.pem`,
/// `server.key`) signed by it, in `dir`; returns the CA's file.
pub fn make_certificates(dir: &Path) -> PathBuf {
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         extendedKeyUsage=serverAuth\n",
    )
    .expect("write ext");
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=vestibule test CA",
        ],
    );
    sign(dir, "server", "/CN=127.0.0.1", "server.ext");
    dir.join("ca.pem")
}

/// A client certificate `<name>.pem` / `<name>.key` signed by the CA in `dir`.
pub fn make_client_certificate(dir: &Path, name: &str) {
    std::fs::write(
        dir.join("client.ext"),
        "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
    )
    .expect("write ext");
    sign(dir, name, &format!("/CN={name}"), "client.ext");
}

fn sign(dir: &Path, name: &str, subject: &str, ext: &str) {
    let (key, csr, pem) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
    );
    openssl(
        dir,
        &[
            "req", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &csr, "-subj", subject,
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "2",
            "-extfile",
            ext,
        ],
    );
}
