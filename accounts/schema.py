"""OpenAPI description of the Supabase bearer authentication (drf-spectacular)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class SupabaseJWTScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.SupabaseJWTAuthentication"
    name = "SupabaseJWT"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "Supabase access token (HS256 or ES256/RS256 from the project's JWKS).",
        }
