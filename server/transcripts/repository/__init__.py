"""SQL of the transcripts domain, by aggregate: `transcripts` (stored transcripts, chunks, sentence analysis),
`jobs` (ingest jobs), `courses` (course ownership), `search` (retrieval over chunks; its hybrid statement
is built in `search_sql`), `sentences` (reads of the sentence analysis) and `upkeep` (re-embedding and analysis
backfill). Functions take the caller's session or connection and flush; the caller owns the transaction."""
