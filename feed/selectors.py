"""Reads of the feed: the newsfeed page, one post, comments, search.

The newsfeed is read from `v_newsfeed_feed` (visible posts only: not deleted, not hidden
by a moderator, author active) with a keyset on (created_at DESC, id DESC), split in two
phases so that pinned posts come first without an index on `is_pinned`:

1. pinned posts, newest first (small partial index `idx_posts_pinned`);
2. then the other posts, newest first (`idx_posts_feed`).

The cursor is the position of the last post returned: (phase, created_at, id), signed.
A page that ends the pinned phase is completed from the start of phase 2 in the same
query (UNION ALL, each branch bounded by LIMIT, so phase 2 is read only when needed).
Posts created during a walk are newer than the cursor, so they never shift later pages:
every post visible when the walk started is returned exactly once.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from django.db import connection

from accounts.models import Role, User
from emploiplus import pagination, search
from emploiplus.errors import ApplicationError, Forbidden, NotFound
from emploiplus.pagination import Page
from feed.models import Comment, Post

FEED_COLUMNS = """
    f.id, f.user_id, f.title, f.content, f.image_urls, f.is_pinned,
    f.likes_count, f.comments_count, f.shares_count, f.created_at, f.updated_at,
    f.author_full_name, f.author_avatar_url, f.author_role,
    f.company_id, f.company_name, f.company_logo_url,
    EXISTS (SELECT 1 FROM post_likes AS l WHERE l.post_id = f.id AND l.user_id = %(viewer)s) AS liked_by_me
"""

FEED_ORDER = "ORDER BY is_pinned DESC, created_at DESC, id DESC"
PHASE_ORDER = "ORDER BY f.created_at DESC, f.id DESC"


def _fetch(sql: str, params: dict[str, Any] | list[Any]) -> list[dict[str, Any]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        columns = [col.name for col in cursor.description]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def feed_entry_shape(row: dict[str, Any]) -> dict[str, Any]:
    """The API shape of one `v_newsfeed_feed` row (author and company embedded)."""
    company = None
    if row["company_id"] is not None:
        company = {"id": row["company_id"], "name": row["company_name"], "logo_url": row["company_logo_url"]}
    return {
        "id": row["id"],
        "title": row["title"],
        "content": row["content"],
        "image_urls": row["image_urls"] or [],
        "is_pinned": row["is_pinned"],
        "likes_count": row["likes_count"],
        "comments_count": row["comments_count"],
        "shares_count": row["shares_count"],
        "liked_by_me": row["liked_by_me"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "author": {
            "id": row["user_id"],
            "full_name": row["author_full_name"],
            "avatar_url": row["author_avatar_url"],
            "role": row["author_role"],
        },
        "company": company,
    }


def _feed_cursor_position(token: str) -> tuple[bool, dt.datetime, uuid.UUID]:
    """(in the pinned phase?, created_at, id) of the last post of the previous page."""
    pinned = pagination.decode_cursor("feed", token).get("p")
    created_at, post_id = pagination.keyset_position("feed", token)
    if not isinstance(pinned, bool):
        raise ApplicationError("invalid_cursor", "Curseur invalide.")
    return pinned, created_at, post_id


def feed_list(*, viewer: User, cursor: str | None = None, limit: int = 20) -> Page:
    """One page of the newsfeed for `viewer`: one SQL query whatever the page size."""
    params: dict[str, Any] = {"viewer": viewer.pk, "n": limit + 1}
    pinned_branch = (
        f"(SELECT {FEED_COLUMNS} FROM v_newsfeed_feed AS f WHERE f.is_pinned{{after}} {PHASE_ORDER} LIMIT %(n)s)"
    )
    other_branch = (
        f"(SELECT {FEED_COLUMNS} FROM v_newsfeed_feed AS f WHERE NOT f.is_pinned{{after}} {PHASE_ORDER} LIMIT %(n)s)"
    )
    keyset = " AND (f.created_at, f.id) < (%(t)s, %(i)s)"
    if cursor is None:
        branches = [pinned_branch.format(after=""), other_branch.format(after="")]
    else:
        in_pinned_phase, params["t"], params["i"] = _feed_cursor_position(cursor)
        if in_pinned_phase:
            branches = [pinned_branch.format(after=keyset), other_branch.format(after="")]
        else:
            branches = [other_branch.format(after=keyset)]
    sql = f"SELECT * FROM ({' UNION ALL '.join(branches)}) AS page {FEED_ORDER} LIMIT %(n)s"
    rows = _fetch(sql, params)
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = pagination.encode_cursor(
            "feed", {"p": last["is_pinned"], "t": last["created_at"].isoformat(), "i": str(last["id"])}
        )
    return Page([feed_entry_shape(row) for row in rows], next_cursor)


def feed_entry_get(*, viewer: User, post_id: uuid.UUID) -> dict[str, Any]:
    """One visible post in the feed shape, or 404 (deleted, hidden, inactive author)."""
    rows = _fetch(
        f"SELECT {FEED_COLUMNS} FROM v_newsfeed_feed AS f WHERE f.id = %(id)s", {"viewer": viewer.pk, "id": post_id}
    )
    if not rows:
        raise NotFound("Publication introuvable.", code="post_not_found")
    return feed_entry_shape(rows[0])


def post_is_visible(*, post_id: uuid.UUID) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM v_newsfeed_feed WHERE id = %s", [post_id])
        return cursor.fetchone() is not None


def post_get_visible(*, post_id: uuid.UUID, for_update: bool = False) -> Post:
    """The post if the feed shows it (not deleted, not hidden, author active), else 404."""
    qs = Post.objects.filter(pk=post_id, deleted_at__isnull=True, is_hidden=False, user__is_active=True)
    if for_update:
        qs = qs.select_for_update(of=("self",))
    post = qs.first()
    if post is None:
        raise NotFound("Publication introuvable.", code="post_not_found")
    return post


def post_get_for_author(*, user: User, post_id: uuid.UUID) -> Post:
    """A not-deleted post the caller wrote (admins: any), else 404 / 403."""
    post = Post.objects.filter(pk=post_id, deleted_at__isnull=True).first()
    if post is None or (post.is_hidden and post.user_id != user.pk and user.role != Role.ADMIN):
        raise NotFound("Publication introuvable.", code="post_not_found")
    if post.user_id != user.pk and user.role != Role.ADMIN:
        raise Forbidden("Seul l'auteur peut modifier cette publication.")
    return post


# --- comments ---------------------------------------------------------------------------


def comment_shape(comment: Comment) -> dict[str, Any]:
    return {
        "id": comment.id,
        "post_id": comment.post_id,
        "content": comment.content,
        "created_at": comment.created_at,
        "updated_at": comment.updated_at,
        "author": {
            "id": comment.user_id,
            "full_name": comment.user.full_name,
            "avatar_url": comment.user.avatar_url,
            "role": comment.user.role,
        },
    }


def comment_list(*, post_id: uuid.UUID, cursor: str | None = None, limit: int = 20) -> Page:
    """Comments of a visible post, oldest first, keyset on (created_at, id)."""
    post_get_visible(post_id=post_id)
    qs = Comment.objects.filter(post_id=post_id, deleted_at__isnull=True, user__is_active=True).select_related("user")
    items, next_cursor = pagination.keyset_page(
        qs, list_name=f"comments.{post_id}", cursor=cursor, limit=limit, ascending=True
    )
    return Page([comment_shape(c) for c in items], next_cursor)


# --- search -----------------------------------------------------------------------------

SEARCH_TYPES = {"jobs": "job", "posts": "post", "candidates": "candidate"}
# Ranking considers the newest SEARCH_WINDOW matches of each kind (all of them for any
# selective query). It bounds the work of very common words ("stage", "recrute" match a
# fifth of a million posts, where ranking every match costs hundreds of ms).
SEARCH_WINDOW = 500
SEARCH_MAX_OFFSET = SEARCH_WINDOW
SEARCH_SLICES_DAYS = (7, 60)

# Stage 1 of a search, per kind: the newest matches in the base table, so that the planner
# can use either the GIN index (rare words) or a backward scan of the created_at index
# filtered by @@ (common words). Its conditions are a prefilter; the view stays the
# authority on visibility (stage 2).
_SEARCH_ALIASES = {"job": "j", "post": "p", "candidate": "c"}
_SEARCH_WINDOWS = {
    "job": (
        "SELECT j.id, j.created_at, j.search_vector FROM jobs AS j "
        "WHERE j.status = 'active' AND j.deleted_at IS NULL AND j.search_vector @@ {q}{since} "
        "ORDER BY j.created_at DESC LIMIT {w}"
    ),
    "post": (
        "SELECT p.id, p.created_at, p.search_vector FROM posts AS p "
        "WHERE p.deleted_at IS NULL AND NOT p.is_hidden AND p.search_vector @@ {q}{since} "
        "ORDER BY p.created_at DESC LIMIT {w}"
    ),
    "candidate": (
        "SELECT c.id, c.created_at, c.search_vector FROM candidates AS c "
        "WHERE c.is_active AND c.deleted_at IS NULL AND c.search_vector @@ {q}{since} "
        "ORDER BY c.created_at DESC LIMIT {w}"
    ),
}


def can_search_candidates(user: User) -> bool:
    """Candidate profiles are personal data: only recruiters and admins may search them."""
    return user.role in (Role.COMPANY, Role.ADMIN)


def search_kinds_for(*, user: User, type_: str | None) -> list[str]:
    if type_ in (None, "", "all"):
        kinds = ["job", "post"]
        if can_search_candidates(user):
            kinds.append("candidate")
        return kinds
    if type_ not in SEARCH_TYPES:
        raise ApplicationError("invalid_type", "`type` doit valoir jobs, posts ou candidates.")
    if type_ == "candidates" and not can_search_candidates(user):
        raise Forbidden("La recherche de candidats est réservée aux recruteurs.", code="forbidden")
    return [SEARCH_TYPES[type_]]


def _search_ranked_ids(*, q: str, kinds: list[str], offset: int, count: int) -> list[dict[str, Any]]:
    """Stage 1: (kind, id, score) of the best matches, ranked by ts_rank × recency.

    Each kind's window (its newest SEARCH_WINDOW matches) is looked for in widening time
    slices (SEARCH_SLICES_DAYS, then the whole table). The first slice that holds a full
    window *is* the newest window, found without touching older rows (the planner can
    combine the GIN and created_at indexes); wider slices then do not run at all (their
    CTE is gated by a One-Time Filter on the narrower slice's count).
    """
    tsquery_sql, tsquery_params = search.build_tsquery(q)
    score = search.rank_sql("w.search_vector", "w.created_at", tsquery_sql)
    w = SEARCH_WINDOW
    ctes, branches, params = [], [], []
    for kind in kinds:
        alias = _SEARCH_ALIASES[kind]
        levels = [*SEARCH_SLICES_DAYS, None]
        names = [f"{kind}_{i}" for i in range(len(levels))]
        pick = []
        for i, days in enumerate(levels):
            since = "" if days is None else f" AND {alias}.created_at >= now() - interval '{int(days)} days'"
            body = _SEARCH_WINDOWS[kind].format(q=tsquery_sql, w=w, since=since)
            params += tsquery_params
            # Runs only when every narrower slice came back short of a full window.
            gate = " AND ".join(f"(SELECT count(*) FROM {name}) < {w}" for name in names[:i]) or "true"
            ctes.append(f"{names[i]} AS MATERIALIZED (SELECT * FROM ({body}) AS s WHERE {gate})")
            full = "true" if days is None else f"(SELECT count(*) FROM {names[i]}) >= {w}"
            pick.append(f"SELECT * FROM {names[i]} WHERE {full}")
        ctes.append(f"window_{kind} AS MATERIALIZED ({' UNION ALL '.join(pick)})")
        branches.append(f"SELECT '{kind}' AS kind, w.id, w.created_at, {score} AS score FROM window_{kind} AS w")
    score_params = [p for _ in kinds for p in tsquery_params]
    sql = f"""
        WITH {", ".join(ctes)}
        SELECT kind, id, score FROM ({" UNION ALL ".join(branches)}) AS ranked
        ORDER BY score DESC, created_at DESC, id
        LIMIT %s OFFSET %s
    """
    return _fetch(sql, [*params, *score_params, count, offset])


def search_query(*, q: str, kinds: list[str], offset: int, limit: int) -> tuple[list[dict[str, Any]], int]:
    """Ranked, visible rows of `v_search_optimized` for `q` (the raw search box value).

    Stage 1 ranks ids in the base tables (`_search_ranked_ids`); stage 2 reads those rows
    from the view, which drops what the caller may not see (e.g. posts of inactive
    authors). Returns (rows, how many stage-1 rows were consumed) so that the next page
    continues exactly after the last row shown.
    """
    rows: list[dict[str, Any]] = []
    consumed = 0
    for _ in range(4):  # each round reads 2× what is still missing; almost always one round
        want = limit - len(rows)
        ranked = _search_ranked_ids(q=q, kinds=kinds, offset=offset + consumed, count=2 * want + 1)
        if not ranked:
            break
        visible = {
            row["object_id"]: row
            for row in _fetch(
                "SELECT kind, object_id, title, snippet, created_at FROM v_search_optimized "
                "WHERE kind = ANY(%s) AND object_id = ANY(%s)",
                [kinds, [r["id"] for r in ranked]],
            )
        }
        for r in ranked:
            consumed += 1
            if r["id"] in visible:
                rows.append({**visible[r["id"]], "score": r["score"]})
                if len(rows) == limit:
                    return rows, consumed
        if len(ranked) < 2 * want + 1:
            break
    return rows, consumed


def search_list(*, user: User, q: str, type_: str | None, cursor: str | None = None, limit: int = 20) -> Page:
    kinds = search_kinds_for(user=user, type_=type_)
    offset = pagination.offset_from_cursor("search", cursor, bound=[q, kinds])
    rows, consumed = search_query(q=q, kinds=kinds, offset=offset, limit=limit + 1)
    next_cursor = None
    if len(rows) > limit and offset + consumed - 1 < SEARCH_MAX_OFFSET * len(kinds):
        rows = rows[:limit]
        # The (limit+1)-th row was consumed but not shown: the next page starts with it.
        next_cursor = pagination.offset_cursor("search", offset + consumed - 1, bound=[q, kinds])
    results = [
        {
            "type": row["kind"],
            "id": row["object_id"],
            "title": row["title"],
            "snippet": row["snippet"],
            "created_at": row["created_at"],
            "score": round(float(row["score"]), 6),
        }
        for row in rows[:limit]
    ]
    return Page(results, next_cursor)
