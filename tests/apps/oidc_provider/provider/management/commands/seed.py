"""Users, groups and the vestibule client the tests log in with."""

from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand
from oauth2_provider.models import Application

PASSWORD = "correct horse"
# user name -> (e-mail, groups)
USERS = {
    "alice": ("alice@example.org", ["analysts"]),
    "bob": ("bob@example.org", ["sales"]),
    "root": ("root@example.org", ["admins", "analysts"]),
}
# Loopback redirect URIs match on any port (RFC 8252), so one registration serves every test
# server; the path must still be ShinyProxy's callback.
REDIRECT_URIS = "http://127.0.0.1/login/oauth2/code/shinyproxy"
POST_LOGOUT_URIS = "http://127.0.0.1/login"


class Command(BaseCommand):
    help = "Seed the test users, groups and the vestibule OIDC client."

    def add_arguments(self, parser):
        parser.add_argument("--client-id", required=True)
        parser.add_argument("--client-secret", required=True)

    def handle(self, *args, client_id, client_secret, **options):
        for name, (email, groups) in USERS.items():
            user, _ = User.objects.get_or_create(username=name, defaults={"email": email})
            user.email = email
            user.set_password(PASSWORD)
            user.save()
            user.groups.set([Group.objects.get_or_create(name=g)[0] for g in groups])
        Application.objects.update_or_create(
            client_id=client_id,
            defaults={
                "name": "vestibule",
                "client_secret": client_secret,
                "client_type": Application.CLIENT_CONFIDENTIAL,
                "authorization_grant_type": Application.GRANT_AUTHORIZATION_CODE,
                "redirect_uris": REDIRECT_URIS,
                "post_logout_redirect_uris": POST_LOGOUT_URIS,
                "algorithm": Application.RS256_ALGORITHM,
                "skip_authorization": True,
            },
        )
