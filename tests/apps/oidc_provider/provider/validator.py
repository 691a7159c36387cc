from oauth2_provider.oauth2_validators import OAuth2Validator


class GroupsValidator(OAuth2Validator):
    """Puts the user's Django groups into the ID token and userinfo in the three shapes
    identity providers use: a list (`groups`), a comma-separated string (`roles_csv`) and a
    nested list (`realm_access.roles`, as Keycloak does)."""

    oidc_claim_scope = {
        **OAuth2Validator.oidc_claim_scope,
        "groups": "openid",
        "roles_csv": "openid",
        "realm_access": "openid",
    }

    def get_additional_claims(self, request):
        user = request.user
        groups = sorted(g.name for g in user.groups.all())
        return {
            "preferred_username": user.username,
            "email": user.email,
            "groups": groups,
            "roles_csv": ",".join(groups),
            "realm_access": {"roles": groups},
        }
