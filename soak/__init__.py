"""Soak test: the real server under a long mixed load while its dependencies misbehave.

    python -m soak                  # 10 minutes (`make soak`); the table goes to soak/results/latest.md
    python -m soak --seconds 60     # the short run `make test` includes (tests/test_soak.py; RSS not judged)

What runs: a `tutorstream-server serve` process on a fresh PostgreSQL database (embedded), a redis-server
and an OpenAI-compatible upstream (tests/support/fake_openai.py), all owned by the run, on loopback. Closed-loop
clients with seeded random pauses keep the offered load constant: chat conversations (a quarter of the turns
cancelled by the client at a random moment), agent calls (hints, quizzes and answers to them, reflections,
learning paths, preferences), progress (PublishVideoEvents batches and WatchVideo streams that answer the
interventions they get, some abandoned midway), interaction tracking with usage reads, and transcript ingests
(new versions of a fixed set of lectures, so the course does not grow without end) awaited to their end with
WatchIngestJob. Faults: Redis is stopped halfway through and started again on the
same port a few seconds later; throughout, the upstream answers a share of chat and agent calls with 429 (and
a smaller share of embedding calls), and cuts a share of chat streams after a few tokens.

Pass criteria (all must hold; `python -m soak` exits 1 otherwise):
- no RPC ends INTERNAL or UNKNOWN (every other status is tallied and printed);
- every RPC ends OK in at least 90% of the calls the client did not cancel itself (the faults may fail some
  calls, not most: a run where most calls end UNAVAILABLE fails), and at least 10 calls end OK after Redis is
  back;
- every acknowledged write is stored (see `soak.ledger` for what counts as acknowledged), checked in the
  database after the server stopped; each kind of write must have been acknowledged at least once;
- flat memory and task count, after a warm-up of max(10 s, 20% of the run):
  - RSS (/proc VmRSS of the server) is sampled every 0.5 to 5 s under load. The median of the last window
    must be within ±10% of the median of the first window after the warm-up (each window max(5 s, 20% of
    the rest of the run)). Both windows see the same closed-loop clients and neither contains the Redis
    outage; medians keep one sample taken during a burst from deciding.
  - the asyncio task count (`tutorstream_asyncio_tasks` on the server's Prometheus endpoint) moves with the
    calls in flight, so it is judged at rest: at the end of the warm-up the clients are held between two
    calls until none is in flight, the server gets 3 s to settle (buffered writes go out every second), and
    the median of five samples is taken; the same after the load stops. The count at the end must be within
    ±10% of the count after the warm-up. Its minimum and maximum under load are printed for context.
  Bounded per-session state must level off within the warm-up for this to be meaningful, so idle watch
  sessions are unloaded after 20 s (WATCH_SESSION_IDLE_SECONDS) instead of the default 10 minutes.
- the faults really happened (Redis restart, upstream 429s and drops, client cancels), and every client
  finished its last call after the load stopped;
- the server still answers the gRPC health check SERVING, and exits 0 on SIGTERM.
"""
