"""Django's PostgreSQL backend with our pool check (settings: ENGINE = "emploiplus.postgres")."""
