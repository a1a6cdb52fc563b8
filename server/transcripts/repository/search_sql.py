"""The SQL of a hybrid search, one statement per search, built for its scope and embedding model.

Full text is ranked with BM25 over the `english` column, plus a small IDF-weighted bonus for exact code terms
matched in the `simple` column; vectors and full text are fused by reciprocal rank (`RRF_K`).

A search in one video or one course reads the chunks in scope once (the btree on video_id or course_id):
BM25 needs all of them anyway, so ranking their vectors exactly costs only the distances (a few thousand at
most) and misses nothing, where the HNSW index behind a filter that keeps a small share of the rows walks
much of the graph for a worse answer. A search over every chunk uses the model's HNSW index and the GIN
indexes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# Reciprocal rank fusion: a hit's score is the sum of 1 / (RRF_K + rank) over the halves that found it.
RRF_K = 60
# Okapi BM25 for the full-text half: PostgreSQL's own ts_rank has no notion of how rare a word is, so a
# word that occurs in every chunk of a lecture ("flex") would outweigh the one that matters.
BM25_K1 = 1.2
BM25_B = 0.75
# Exact code terms found only by the `simple` column rank after BM25 matches; a small weight makes an exact
# spelling a tie-breaker without letting a common identifier ("useEffect") outweigh the rest of a question.
CODE_TERM_WEIGHT = 0.25
_MODEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9:._/\-]{0,199}$")
# Tokens that look like code: hyphenated or dotted identifiers, camelCase, snake_case, calls, three-digit
# status codes. They are also matched unstemmed (the `simple` full-text column), so `justify-content` or
# `useEffect` find their chunk even when the embedding does not.
_CODE_TERM = re.compile(
    r"[A-Za-z_$][\w$]*(?:[-.:][A-Za-z0-9_$]+)+(?:\(\))?"
    r"|[a-z]+[A-Z][\w$]*|[A-Za-z]+_[\w]+|\b\d{3}\b"
)


def vector_literal(vector: Sequence[float]) -> str:
    return "[" + ",".join(map("{:.7g}".format, vector)) + "]"


def sql_model_literal(model_id: str) -> str:
    """The model id as a SQL string literal. It is inlined, not bound, so the planner can match the
    model's partial HNSW index (`WHERE embedding_model = '...'`) with any plan, generic ones included."""
    if not _MODEL_ID.match(model_id):
        raise ValueError(f"embedding model id {model_id!r} has characters outside [A-Za-z0-9:._/-]")
    return "'" + model_id.replace("'", "''") + "'"


def code_terms(query: str) -> list[str]:
    terms: list[str] = []
    for match in _CODE_TERM.finditer(query):
        term = match.group(0).rstrip(".:-")
        if term and term not in terms:
            terms.append(term)
    return terms[:16]


def scope_filter(video_id: str | None, course_id: str | None, window: bool) -> str:
    """The WHERE condition on chunks `c` for a search's scope ("TRUE": every chunk)."""
    parts: list[str] = []
    if video_id is not None:
        parts.append("c.video_id = :video_id")
    if course_id is not None:
        parts.append("c.course_id = :course_id")
    if window:
        parts.append("c.end_seconds > :window_start AND c.start_seconds < :window_end")
    return " AND ".join(parts) if parts else "TRUE"


def nearest_sql(*, model_id: str, dimension: int, scope: str, exact: bool) -> str:
    """Chunk ids with their rank by cosine distance to :query_vector, among the model's vectors in scope."""
    cast = f"c.embedding::vector({dimension})"
    query_vector = f"CAST(:query_vector AS vector({dimension}))"
    # `+ 0` hides the ordering from the HNSW index: the exact scan (via the video index) is chosen.
    order = f"({cast} <=> {query_vector}) + 0" if exact else f"{cast} <=> {query_vector}"
    return f"""
        SELECT id, row_number() OVER (ORDER BY distance, id) AS rank
        FROM (
            SELECT c.id, {cast} <=> {query_vector} AS distance
            FROM transcript_chunks c
            WHERE c.embedding_model = {sql_model_literal(model_id)} AND {scope}
            ORDER BY {order}
            LIMIT :candidates
        ) nearest"""


CHUNK_COLUMNS = "c.id, c.video_id, c.course_id, c.start_seconds, c.end_seconds, c.text"


def _query_sql(dimension: int) -> str:
    """The question as tsqueries (and as a vector when `dimension` is set), computed once per search."""
    vector = f",\n                CAST(:query_vector AS vector({dimension})) AS vector" if dimension else ""
    return f"""query AS (
            SELECT
                replace(plainto_tsquery('english', :query)::text, ' & ', ' | ')::tsquery AS words,
                tsvector_to_array(to_tsvector('english', :query)) AS terms,
                code.code,
                numnode(code.code) > 0 AS has_code{vector}
            FROM (
                SELECT coalesce(
                    (SELECT string_agg('(' || phraseto_tsquery('simple', term)::text || ')', ' | ')
                     FROM unnest(:code_terms) AS term
                     WHERE numnode(phraseto_tsquery('simple', term)) > 0),
                    ''
                )::tsquery AS code
            ) code
        )"""


def _text_ranked_sql() -> str:
    """BM25 over `matched` with the statistics of `corpus`, plus the code-term bonus: `text_ranked`."""
    return f"""term_freq AS MATERIALIZED (
            SELECT m.id, m.len, u.lexeme, cardinality(u.positions) AS tf
            -- Only the query's lexemes: marked with weight A, then kept by weight (both work on the binary).
            FROM matched m, query, unnest(ts_filter(setweight(m.search_english, 'A', query.terms), '{{a}}')) AS u
        ),
        term_weight AS MATERIALIZED (
            SELECT t.lexeme, ln(1 + (corpus.n - count(*) + 0.5) / (count(*) + 0.5)) AS idf
            FROM term_freq t, corpus GROUP BY t.lexeme, corpus.n
        ),
        bm25 AS MATERIALIZED (
            SELECT t.id,
                   sum(w.idf * t.tf * {BM25_K1 + 1}
                       / (t.tf + {BM25_K1} * (1 - {BM25_B} + {BM25_B} * t.len / corpus.mean_length))) AS score
            FROM term_freq t JOIN term_weight w ON w.lexeme = t.lexeme CROSS JOIN corpus
            GROUP BY t.id
        ),
        code_weight AS MATERIALIZED (
            SELECT {CODE_TERM_WEIGHT} * ln(1 + (corpus.n - count(*) + 0.5) / (count(*) + 0.5)) AS bonus
            FROM matched m, corpus WHERE m.code_match GROUP BY corpus.n
        ),
        text_ranked AS (
            SELECT id, row_number() OVER (ORDER BY relevance DESC, id) AS rank
            FROM (
                SELECT m.id,
                       coalesce(b.score, 0)
                       + CASE WHEN m.code_match THEN (SELECT bonus FROM code_weight) ELSE 0 END AS relevance
                FROM matched m LEFT JOIN bm25 b ON b.id = m.id
                ORDER BY relevance DESC, m.id
                LIMIT :candidates
            ) best
        )"""


_FUSED_COLUMNS = f"""coalesce(1.0 / ({RRF_K} + v.rank), 0) + coalesce(1.0 / ({RRF_K} + t.rank), 0) AS score,
               coalesce(v.rank, 0) AS vector_rank,
               coalesce(t.rank, 0) AS text_rank"""
_NO_VECTORS = "SELECT NULL::text AS id, NULL::bigint AS rank WHERE FALSE"


def _scoped_hybrid_sql(*, model_id: str | None, dimension: int, scope: str, exact: bool) -> str:
    """A video or a course: one read of the scope's chunks serves both halves and the result.

    Full text needs every chunk in scope (matching, and the chunk count and mean length of BM25), so the
    scope's rows are read once, into `scoped`, with what the result shows, each chunk's distance to the
    question (exact ranking: a few thousand distances at most, next to that read) and its match flags.
    A question's words are common enough that a full-text index scan over every chunk costs far more than
    that read. With `exact=False` the vector half goes to the HNSW index instead."""
    if model_id is None:
        distance = "NULL::float8"
        vector_part = _NO_VECTORS
    else:
        # The guard keeps vectors of another model (another dimension, mid re-embedding) out of the ranking.
        distance = f"CASE WHEN c.embedding_model = {sql_model_literal(model_id)} THEN c.embedding <=> query.vector END"
        vector_part = (
            """SELECT id, row_number() OVER (ORDER BY distance, id) AS rank
            FROM (
                SELECT id, distance FROM scoped WHERE distance IS NOT NULL ORDER BY distance, id LIMIT :candidates
            ) nearest"""
            if exact
            else nearest_sql(model_id=model_id, dimension=dimension, scope=scope, exact=False)
        )
    return f"""
        WITH {_query_sql(dimension if model_id is not None else 0)},
        scoped AS MATERIALIZED (
            SELECT {CHUNK_COLUMNS},
                   length(c.search_english) AS len,
                   CASE WHEN c.search_english @@ query.words THEN c.search_english END AS matched_words,
                   -- The `simple` column is only read when the question has code terms.
                   coalesce(query.has_code AND c.search_simple @@ query.code, FALSE) AS code_match,
                   {distance} AS distance
            FROM transcript_chunks c, query
            WHERE {scope}
        ),
        vector_ranked AS ({vector_part}),
        matched AS MATERIALIZED (
            SELECT id, matched_words AS search_english, len, code_match
            FROM scoped WHERE matched_words IS NOT NULL OR code_match
        ),
        corpus AS MATERIALIZED (SELECT count(*) AS n, coalesce(avg(len), 1) AS mean_length FROM scoped),
        {_text_ranked_sql()}
        SELECT s.id, s.video_id, s.course_id, s.start_seconds, s.end_seconds, s.text,
               {_FUSED_COLUMNS}
        FROM scoped s
        LEFT JOIN vector_ranked v ON v.id = s.id
        LEFT JOIN text_ranked t ON t.id = s.id
        WHERE v.id IS NOT NULL OR t.id IS NOT NULL
        ORDER BY score DESC, s.video_id, s.start_seconds
        LIMIT :limit
    """


def _global_hybrid_sql(*, model_id: str | None, dimension: int, exact: bool) -> str:
    """Every chunk: the GIN indexes do the matching, the chunk count comes from the transcripts and the mean
    length is taken over the matches; the vector half uses the HNSW index unless `exact`."""
    vector_part = (
        _NO_VECTORS
        if model_id is None
        else nearest_sql(model_id=model_id, dimension=dimension, scope="TRUE", exact=exact)
    )
    return f"""
        WITH {_query_sql(0)},
        vector_ranked AS ({vector_part}),
        matched AS MATERIALIZED (
            SELECT c.id, c.search_english, length(c.search_english) AS len, c.search_simple @@ query.code AS code_match
            FROM transcript_chunks c, query
            WHERE c.search_english @@ query.words OR c.search_simple @@ query.code
        ),
        corpus AS MATERIALIZED (
            SELECT (SELECT coalesce(sum(chunk_count), 0) FROM transcripts) AS n,
                   (SELECT coalesce(avg(len), 1) FROM matched) AS mean_length
        ),
        {_text_ranked_sql()}
        SELECT {CHUNK_COLUMNS},
               {_FUSED_COLUMNS}
        FROM transcript_chunks c
        LEFT JOIN vector_ranked v ON v.id = c.id
        LEFT JOIN text_ranked t ON t.id = c.id
        WHERE c.id IN (SELECT id FROM vector_ranked UNION SELECT id FROM text_ranked)
        ORDER BY score DESC, c.video_id, c.start_seconds
        LIMIT :limit
    """


def hybrid_sql(*, model_id: str | None, dimension: int, scope: str, exact: bool) -> str:
    """The one statement of a hybrid search (`scope` from `scope_filter`; no `model_id`: full text only)."""
    if scope == "TRUE":
        return _global_hybrid_sql(model_id=model_id, dimension=dimension, exact=exact)
    return _scoped_hybrid_sql(model_id=model_id, dimension=dimension, scope=scope, exact=exact)
