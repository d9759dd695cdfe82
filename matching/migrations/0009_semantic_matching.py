"""Semantic matching (issue 15): the pgvector tables, only where the server has pgvector.

Django's state gets the three models (so the ORM, flush and makemigrations know them);
the database gets `matching.semantic_sql.SCHEMA_SQL`, which creates them only when the
`vector` extension is available and may be created (see that module). Without it the
migration succeeds and creates nothing; semantic matching then reports itself off.
`candidate_job_matches` gains two plain nullable columns for rows added by the hybrid
notification threshold.
"""

import django.db.models.deletion
import pgvector.django.indexes
import pgvector.django.vector
from django.db import migrations, models

from matching.semantic_sql import DROP_SQL, SCHEMA_SQL


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0004_candidate_profile_text"),
        ("matching", "0008_drop_users_active_id_index"),
    ]

    operations = [
        migrations.AddField(
            model_name="candidatejobmatch",
            name="hybrid_score",
            field=models.DecimalField(blank=True, decimal_places=1, max_digits=4, null=True),
        ),
        migrations.AddField(
            model_name="candidatejobmatch",
            name="semantic_score",
            field=models.DecimalField(blank=True, decimal_places=1, max_digits=4, null=True),
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="SkillEmbedding",
                    fields=[
                        ("name", models.TextField(primary_key=True, serialize=False)),
                        ("embedding", pgvector.django.vector.VectorField(dimensions=512)),
                        ("model", models.CharField(max_length=64)),
                    ],
                    options={
                        "verbose_name": "embedding de compétence",
                        "db_table": "skill_embeddings",
                    },
                ),
                migrations.CreateModel(
                    name="CandidateEmbedding",
                    fields=[
                        (
                            "candidate",
                            models.OneToOneField(
                                on_delete=django.db.models.deletion.DO_NOTHING,
                                primary_key=True,
                                related_name="embedding",
                                serialize=False,
                                to="accounts.candidate",
                            ),
                        ),
                        ("embedding", pgvector.django.vector.VectorField(dimensions=512)),
                        ("source_hash", models.CharField(max_length=64)),
                        ("source_updated_at", models.DateTimeField()),
                        ("model", models.CharField(max_length=64)),
                        ("embedded_at", models.DateTimeField()),
                    ],
                    options={
                        "verbose_name": "embedding de profil",
                        "db_table": "candidate_embeddings",
                        "indexes": [
                            pgvector.django.indexes.HnswIndex(
                                ef_construction=64,
                                fields=["embedding"],
                                m=16,
                                name="idx_candidate_embeddings_hnsw",
                                opclasses=["vector_cosine_ops"],
                            )
                        ],
                    },
                ),
                migrations.CreateModel(
                    name="JobEmbedding",
                    fields=[
                        (
                            "job",
                            models.OneToOneField(
                                on_delete=django.db.models.deletion.DO_NOTHING,
                                primary_key=True,
                                related_name="embedding",
                                serialize=False,
                                to="matching.job",
                            ),
                        ),
                        ("embedding", pgvector.django.vector.VectorField(dimensions=512)),
                        ("source_hash", models.CharField(max_length=64)),
                        ("source_updated_at", models.DateTimeField()),
                        ("model", models.CharField(max_length=64)),
                        ("embedded_at", models.DateTimeField()),
                    ],
                    options={
                        "verbose_name": "embedding d'offre",
                        "db_table": "job_embeddings",
                        "indexes": [
                            pgvector.django.indexes.HnswIndex(
                                ef_construction=64,
                                fields=["embedding"],
                                m=16,
                                name="idx_job_embeddings_hnsw",
                                opclasses=["vector_cosine_ops"],
                            )
                        ],
                    },
                ),
            ],
            database_operations=[migrations.RunSQL(sql=SCHEMA_SQL, reverse_sql=DROP_SQL)],
        ),
    ]
