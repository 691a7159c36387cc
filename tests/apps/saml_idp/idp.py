"""A real SAML 2.0 identity provider for vestibule's tests: pysaml2's IdP (signing and
encrypting with xmlsec1), behind a small stdlib HTTP server on a free loopback port.

Usage: idp.py DIR   (DIR holds its key, certificate and metadata; prints "LISTENING <port>")

Endpoints:
  GET  /metadata          the IdP's metadata
  POST /register          an SP's metadata (body): the IdP will answer that SP from now on
  GET  /sso/redirect      the Redirect binding's AuthnRequest: shows the login form
  POST /login             user, password, key, mode: answers with an auto-posting form
  GET  /slo/redirect      a LogoutRequest: ends the IdP session, back to the SP's logout page

`mode` lets a test ask for a bad answer that a real IdP could send: expired, skew (NotBefore
an hour ahead), audience (issued for another SP), unsolicited (no InResponseTo), unsigned,
oldauth (the user authenticated three hours ago);
or for an encrypted assertion (encrypted).
"""

import base64
import datetime
import functools
import html
import http.server
import re
import secrets
import shutil
import sys
import time
import urllib.parse
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

import saml2
import saml2.xmldsig
import saml2.assertion
import saml2.entity
import saml2.sigver
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.config import IdPConfig
from saml2.metadata import create_metadata_string
from saml2.saml import NAMEID_FORMAT_PERSISTENT
from saml2.server import Server
from saml2.time_util import instant, in_a_while

USERS = {
    # name: (password, groups)
    "alice": ("correct horse", ["analysts"]),
    "bob": ("correct horse", ["sales"]),
    "root": ("correct horse", ["admins", "analysts"]),
}
OTHER_SP = "urn:vestibule-test:another-service"

# samael decrypts AES-128-CBC; pysaml2's default is 3DES.
saml2.entity.pre_encryption_part = functools.partial(
    saml2.sigver.pre_encryption_part, msg_enc="http://www.w3.org/2001/04/xmlenc#aes128-cbc"
)
_encrypt = saml2.sigver.SecurityContext.encrypt_assertion
saml2.sigver.SecurityContext.encrypt_assertion = (
    lambda self, statement, enc_key, template, key_type="aes-128", node_xpath=None: _encrypt(
        self, statement, enc_key, template, "aes-128", node_xpath
    )
)
_real_instant = saml2.assertion.instant
_real_in_a_while = saml2.assertion.in_a_while


def make_key(directory: Path):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "vestibule test IdP")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    (directory / "idp.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    (directory / "idp.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


class Idp:
    def __init__(self, directory: Path, base: str):
        self.base = base
        self.pending = {}  # key -> (authn request info, relay state)
        self.sp_certs = {}  # SP entity id -> its certificate (base64 DER)
        conf = IdPConfig()
        conf.load(
            {
                "entityid": f"{base}/metadata",
                "xmlsec_binary": shutil.which("xmlsec1"),
                "key_file": str(directory / "idp.key"),
                "cert_file": str(directory / "idp.crt"),
                "metadata": {},
                "service": {
                    "idp": {
                        "endpoints": {
                            "single_sign_on_service": [
                                (f"{base}/sso/redirect", BINDING_HTTP_REDIRECT)
                            ],
                            "single_logout_service": [
                                (f"{base}/slo/redirect", BINDING_HTTP_REDIRECT)
                            ],
                        },
                        "name_id_format": [NAMEID_FORMAT_PERSISTENT],
                        "policy": {"default": {"lifetime": {"minutes": 5}}},
                        "sign_response": True,
                        "sign_assertion": True,
                        # pysaml2 signs with SHA-1 otherwise, which vestibule refuses.
                        "signing_algorithm": saml2.xmldsig.SIG_RSA_SHA256,
                        "digest_algorithm": saml2.xmldsig.DIGEST_SHA256,
                    }
                },
            }
        )
        self.server = Server(config=conf)
        self.metadata = create_metadata_string(None, config=conf, sign=False).decode()

    def register(self, xml: str):
        entity = re.search(r'entityID="([^"]+)"', xml).group(1)
        self.server.metadata.load("inline", xml)
        # The same service under another name, for the wrong-audience answer.
        self.server.metadata.load("inline", xml.replace(f'entityID="{entity}"', f'entityID="{OTHER_SP}"', 1))
        cert = re.search(r"<(?:\w+:)?X509Certificate>([^<]+)<", xml)
        if cert:
            self.sp_certs[entity] = cert.group(1).strip()
        return entity

    def answer(self, key: str, user: str, mode: str):
        req, relay = self.pending.pop(key)
        sp = req.message.issuer.text
        password_groups = USERS[user]
        identity = {
            "email": [f"{user}@example.org"],
            "uid": [user],
            "groups": password_groups[1],
        }
        args = dict(
            identity=identity,
            in_response_to=req.message.id,
            destination=req.message.assertion_consumer_service_url,
            sp_entity_id=sp,
            userid=user,
            name_id=saml2.saml.NameID(format=NAMEID_FORMAT_PERSISTENT, text=f"{user}-persistent"),
            authn={"class_ref": saml2.saml.AUTHN_PASSWORD, "authn_auth": self.base},
            sign_response=True,
            sign_assertion=True,
        )
        if mode == "unsolicited":
            args["in_response_to"] = None
            relay = ""
        if mode == "audience":
            args["sp_entity_id"] = OTHER_SP
        if mode == "oldauth":
            # The user signed in at the IdP three hours ago.
            args["authn"] = dict(args["authn"], authn_instant=int(time.time()) - 3 * 3600)
        if mode == "unsigned":
            args["sign_response"] = False
            args["sign_assertion"] = False
        if mode == "encrypted":
            args["encrypt_assertion"] = True
            args["encrypt_cert_assertion"] = self.sp_certs.get(sp)
        try:
            if mode == "expired":
                saml2.assertion.in_a_while = lambda **kw: in_a_while(minutes=-60)
            if mode == "skew":
                saml2.assertion.instant = lambda *a, **kw: in_a_while(hours=1)
            response = self.server.create_authn_response(**args)
        finally:
            saml2.assertion.instant = _real_instant
            saml2.assertion.in_a_while = _real_in_a_while
        encoded = base64.b64encode(str(response).encode()).decode()
        return args["destination"], encoded, relay


def login_page(key: str, error: str = "", force: bool = False) -> str:
    return f"""<!doctype html><html><head><title>Test IdP login</title></head><body>
<h1>Test IdP</h1><p id="error">{html.escape(error)}</p>
<form method="post" action="/login">
<input type="hidden" name="key" value="{html.escape(key)}">
<label>User <input id="idp-username" name="user"></label>
<label>Password <input id="idp-password" name="password" type="password"></label>
<input type="hidden" name="mode" value="">
<p id="force-authn">ForceAuthn: {"true" if force else "false"}</p>
<button id="idp-submit" type="submit">Sign in</button>
</form></body></html>"""


def post_page(acs: str, response: str, relay: str) -> str:
    return f"""<!doctype html><html><head><title>Redirecting</title></head>
<body onload="document.forms[0].submit()">
<form method="post" action="{html.escape(acs)}">
<input type="hidden" name="SAMLResponse" value="{html.escape(response)}">
<input type="hidden" name="RelayState" value="{html.escape(relay)}">
<noscript><button type="submit">Continue</button></noscript>
</form></body></html>"""


class Handler(http.server.BaseHTTPRequestHandler):
    idp: Idp = None

    def log_message(self, fmt, *args):
        sys.stderr.write("saml-idp: " + (fmt % args) + "\n")

    def send(self, status: int, body: str, ctype="text/html; charset=utf-8", headers=()):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def form(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length).decode()
        return body, {k: v[0] for k, v in urllib.parse.parse_qs(body, keep_blank_values=True).items()}

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        q = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
        try:
            if url.path == "/metadata":
                return self.send(200, self.idp.metadata, "application/samlmetadata+xml")
            if url.path == "/sso/redirect":
                req = self.idp.server.parse_authn_request(q["SAMLRequest"], BINDING_HTTP_REDIRECT)
                key = secrets.token_urlsafe(16)
                self.idp.pending[key] = (req, q.get("RelayState", ""))
                return self.send(200, login_page(key, force=str(req.message.force_authn).lower() == "true"))
            if url.path == "/slo/redirect":
                req = self.idp.server.parse_logout_request(q["SAMLRequest"], BINDING_HTTP_REDIRECT)
                name_id = req.message.name_id.text
                sys.stderr.write(f"saml-idp: logout of {name_id}\n")
                sp = req.message.issuer.text
                back = self.idp.server.metadata.single_logout_service(sp, BINDING_HTTP_POST, "spsso")
                target = back[0]["location"] if back else "/"
                return self.send(
                    200,
                    f'<!doctype html><p id="logged-out">Logged out of the test IdP: {html.escape(name_id)}</p>'
                    f'<a id="back" href="{html.escape(target)}">back</a>',
                )
        except Exception as e:  # a test reads this from the page
            return self.send(400, f"<p id='error'>{html.escape(type(e).__name__ + ': ' + str(e))}</p>")
        self.send(404, "not found")

    def do_POST(self):
        url = urllib.parse.urlparse(self.path)
        body, f = self.form()
        try:
            if url.path == "/register":
                entity = self.idp.register(body)
                return self.send(200, entity, "text/plain")
            if url.path == "/login":
                user = f.get("user", "")
                if user not in USERS or USERS[user][0] != f.get("password"):
                    return self.send(401, login_page(f.get("key", ""), "wrong user name or password"))
                acs, response, relay = self.idp.answer(f["key"], user, f.get("mode", ""))
                return self.send(200, post_page(acs, response, relay))
        except Exception as e:
            return self.send(400, f"<p id='error'>{html.escape(type(e).__name__ + ': ' + str(e))}</p>")
        self.send(404, "not found")


def main():
    directory = Path(sys.argv[1])
    directory.mkdir(parents=True, exist_ok=True)
    make_key(directory)
    httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    port = httpd.server_address[1]
    # One request at a time: the answer modes patch pysaml2 for the request they serve.
    # Advertised as localhost: to a browser on 127.0.0.1 (vestibule) that is another site.
    Handler.idp = Idp(directory, f"http://localhost:{port}")
    print(f"LISTENING {port}", flush=True)
    httpd.serve_forever()


if __name__ == "__main__":
    main()
