from django.apps import AppConfig


class EmploiplusConfig(AppConfig):
    """Project-level app: holds the shared SQL layer (functions, roles, RLS helpers) and commands."""

    name = "emploiplus"
    verbose_name = "Emploi+"
