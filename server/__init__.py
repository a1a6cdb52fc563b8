"""tutorstream's server package.

Importing it caps numpy's OpenBLAS at one thread (unless OPENBLAS_NUM_THREADS is set): OpenBLAS spreads even
tiny products over threads, and on a busy two-core server that made the language check of one question take
7 ms instead of 0.03 ms. The server's matrices are small (a question's n-grams, a course's key phrases); the
embedding model runs in torch's own thread pool, which this leaves alone. It must run before numpy is first
imported, which is why it is here.
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
