"""Runs the test OpenID Connect provider (django-oauth-toolkit behind waitress) on a free
loopback port.

    python serve.py DATA_DIR CLIENT_ID CLIENT_SECRET

Generates a fresh RS256 signing key, migrates a fresh SQLite database in DATA_DIR, seeds the
users, groups and one confidential client (see provider/management/commands/seed.py), then
prints `LISTENING <port>` on stdout and serves until killed.
"""

import os
import sys
from pathlib import Path


def main() -> None:
    data_dir, client_id, client_secret = sys.argv[1:4]
    data = Path(data_dir)
    data.mkdir(parents=True, exist_ok=True)
    write_signing_key(data / "rsa.pem")

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    os.environ["OIDC_PROVIDER_DATA"] = str(data)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "provider.settings")

    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    call_command("seed", client_id=client_id, client_secret=client_secret)

    from django.core.wsgi import get_wsgi_application
    from waitress import create_server

    server = create_server(get_wsgi_application(), host="127.0.0.1", port=0, threads=4)
    print(f"LISTENING {server.effective_port}", flush=True)
    server.run()


def write_signing_key(path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


if __name__ == "__main__":
    main()
