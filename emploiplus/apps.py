import logging

from django.apps import AppConfig


class EmploiplusConfig(AppConfig):
    """Project-level app: holds the shared SQL layer (functions, roles, RLS helpers) and commands."""

    name = "emploiplus"
    verbose_name = "Emploi+"

    def ready(self) -> None:
        # Python warnings go through logging too (logger py.warnings), so that with
        # LOG_FORMAT=json every line a process writes is a JSON object.
        logging.captureWarnings(True)
