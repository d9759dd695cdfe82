from django.apps import AppConfig


class MatchingConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "matching"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from emploiplus import effects
        from matching import skills
        from matching.models import SkillAlias

        def _invalidate(**_kwargs) -> None:
            skills.invalidate_cache()
            # Again after commit: a reader may have re-cached the old map meanwhile.
            effects.after_commit(skills.invalidate_cache)

        # weak=False: `_invalidate` is local to this method; a weak reference would let it be
        # garbage-collected (and the signal silently disconnected) once ready() returns.
        post_save.connect(_invalidate, sender=SkillAlias, dispatch_uid="skill_alias_saved", weak=False)
        post_delete.connect(_invalidate, sender=SkillAlias, dispatch_uid="skill_alias_deleted", weak=False)
