"""Embed every job and candidate profile whose vector is missing or out of date.

Batches of --batch-size rows in primary-key order through the same worker code as the
queue (`matching.semantic.embed`): a row whose text did not change costs a hash, not a model
call, so the command can be re-run (or interrupted and re-run) at any time."""

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from matching import semantic


class Command(BaseCommand):
    help = "Compute the embeddings of all jobs and candidate profiles (progress bar; idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=semantic.EMBED_BATCH)
        parser.add_argument("--no-progress", action="store_true", help="no progress bar (logs, CI)")

    def handle(self, *args, batch_size: int, no_progress: bool, **options):
        state = semantic.status()
        if not state.enabled:
            raise CommandError(f"semantic matching is off: {state.reason}")
        if batch_size < 1:
            raise CommandError("--batch-size must be ≥ 1")
        bars: dict[str, tqdm] = {}

        def progress(kind: str, done: int, total: int) -> None:
            if no_progress:
                return
            bar = bars.get(kind)
            if bar is None:
                bar = bars[kind] = tqdm(total=total, desc=f"{kind}s", unit=" rows", file=self.stderr._out)
            bar.update(done - bar.n)

        results = semantic.embed_backfill(batch_size=batch_size, progress=progress)
        for bar in bars.values():
            bar.close()
        for kind, result in results.items():
            r = result.as_dict()
            self.stdout.write(
                f"{kind}s: {r['embedded']} embedded, {r['unchanged']} unchanged, "
                f"{r['skills_embedded']} new skill vectors, {r['seconds']} s"
            )
