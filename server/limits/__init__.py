"""Rate limits, stream slots and token budgets.

- `policy`: RPC classes, stream kinds and the limits of each tier (from Settings).
- `gate`: the RPC gate installed on the server interceptor (Redis or in-process, outage mode).
- `gcra` / `redis_limiter`: the GCRA arithmetic, in process and as one Redis Lua script.
- `budget`: `TokenBudget.reserve()` -> `Reservation.commit()` / `.release()`, accounted in PostgreSQL.
- `setup`: builds all of it for one server process.
"""
