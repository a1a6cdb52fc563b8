"""A real HTTP server on loopback that speaks the parts of the OpenAI API this project uses.

The official SDK talks to it over the wire, so retries, SSE parsing, timeouts and connection handling are the
SDK's real code paths. aiohttp runs in a background thread with its own event loop: sync tests, async tests
on any loop and benchmark scripts can all share one instance. Replies are scripted with `Behavior` queues;
when a queue is empty the matching `*_chooser` (a function of the request's JSON body, e.g. a seeded random
mix of faults) picks the behavior, and without a chooser the matching `default_*` behavior answers.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from aiohttp import web

DEFAULT_EMBEDDING_DIMENSIONS = 1536
MODEL_IDS = ("gpt-4o-mini", "gpt-4o", "text-embedding-3-small", "whisper-1")
DEFAULT_TRANSCRIPT = (
    "Welcome back to the course. Today we look at gradient descent. "
    "We start with a single variable and then move to vectors."
)
TRANSCRIPT_SEGMENT_SECONDS = 2.5
CHAT_PATH = "/v1/chat/completions"
EMBEDDINGS_PATH = "/v1/embeddings"
TRANSCRIPTIONS_PATH = "/v1/audio/transcriptions"
MODERATIONS_PATH = "/v1/moderations"
MODERATION_CATEGORIES = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/instructions",
    "self-harm/intent",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)
# How long stop() lets in-flight handlers finish before cancelling them; slow scripted streams would
# otherwise hold shutdown for aiohttp's default of a minute.
SHUTDOWN_GRACE_SECONDS = 0.2
# A stream held by `Behavior.hold_after_tokens` goes on by itself after this long (a test that forgot it).
HOLD_LIMIT_SECONDS = 30.0
# Input substring -> the moderation category it flags.
DEFAULT_MODERATION_FLAGS = {"hurt myself": "self-harm/intent", "you useless idiot": "harassment"}

_ERROR_KINDS: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "not_found"),
    429: ("requests", "rate_limit_exceeded"),
}


@dataclass
class Behavior:
    """How the server answers one request.

    A status of 400 or more answers with an OpenAI-style error body. `first_token_delay` holds back the
    first byte of the body (for streams the headers go out first, as the real API does). With
    `drop_after_tokens` set the stream never completes: the connection is cut after that many content
    chunks, or after the last one if the content is shorter. With `hold_after_tokens` the stream stops after
    that many content chunks until `FakeOpenAI.release_held()` (a test looks at the middle of an answer).
    """

    content: str | None = None
    json_content: dict[str, Any] | list[Any] | None = None
    status: int = 200
    retry_after: float | None = None
    error_message: str = "scripted failure"
    tokens_per_second: float | None = None
    first_token_delay: float = 0.0
    drop_after_tokens: int | None = None
    hold_after_tokens: int | None = None
    finish_reason: str = "stop"
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


BehaviorChooser = Callable[[dict[str, Any]], Behavior]


@dataclass
class RecordedRequest:
    """One request as the server received it; header names are lower-cased."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]


def split_tokens(text: str) -> list[str]:
    """Split text into word-ish stream tokens whose concatenation is exactly `text`."""
    tokens = re.findall(r"\S+\s*", text)
    leading = text[: len(text) - len(text.lstrip())]
    if not tokens:
        return [text] if text else []
    tokens[0] = leading + tokens[0]
    return tokens


def count_words(text: str) -> int:
    return len(re.findall(r"\S+", text))


@functools.lru_cache(maxsize=4096)
def _word_vector(word: str, dimensions: int) -> npt.NDArray[np.float64]:
    seed = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
    return np.random.default_rng(seed).standard_normal(dimensions)


def embedding_for(text: str, dimensions: int = DEFAULT_EMBEDDING_DIMENSIONS) -> npt.NDArray[np.float32]:
    """The unit vector the server returns for `text`: the normalised sum of one seeded vector per word.

    Texts that share words share components, so cosine similarity behaves roughly like word overlap.
    """
    words = re.findall(r"\w+", text.lower()) or [text]
    total: npt.NDArray[np.float64] = np.add.reduce([_word_vector(word, dimensions) for word in words])
    norm = float(np.linalg.norm(total))
    unit = total / norm if norm > 0 else total
    return unit.astype(np.float32)


def _message_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def _embedding_inputs(raw: Any) -> list[str] | None:
    """Normalise the `input` field; token arrays become strings of their ids. None means invalid."""
    if isinstance(raw, str):
        return [raw]
    if not isinstance(raw, list) or not raw:
        return None
    if all(isinstance(item, int) for item in raw):
        return [" ".join(str(item) for item in raw)]
    texts: list[str] = []
    for item in raw:
        if isinstance(item, str):
            texts.append(item)
        elif isinstance(item, list) and all(isinstance(token, int) for token in item):
            texts.append(" ".join(str(token) for token in item))
        else:
            return None
    return texts


def _error_response(
    status: int, message: str, headers: dict[str, str] | None = None, code: str | None = None
) -> web.Response:
    default_type, default_code = _ERROR_KINDS.get(status, ("server_error", None))
    error = {"message": message, "type": default_type, "param": None, "code": code or default_code}
    return web.json_response({"error": error}, status=status, headers=headers)


def _sse(payload: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(payload)}\n\n".encode()


def _transcript_segments(text: str) -> list[dict[str, Any]]:
    sentences = [part for part in re.split(r"(?<=[.!?])\s+", text.strip()) if part]
    return [
        {
            "id": index,
            "seek": 0,
            "start": index * TRANSCRIPT_SEGMENT_SECONDS,
            "end": (index + 1) * TRANSCRIPT_SEGMENT_SECONDS,
            "text": " " + sentence,
            "tokens": [],
            "temperature": 0.0,
            "avg_logprob": -0.2,
            "compression_ratio": 1.2,
            "no_speech_prob": 0.01,
        }
        for index, sentence in enumerate(sentences)
    ]


def _timestamp(seconds: float, decimal: str) -> str:
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal}{millis:03d}"


def _subtitles(segments: list[dict[str, Any]], vtt: bool) -> str:
    blocks = []
    for segment in segments:
        start = _timestamp(segment["start"], "." if vtt else ",")
        end = _timestamp(segment["end"], "." if vtt else ",")
        cue = f"{start} --> {end}\n{segment['text'].strip()}"
        blocks.append(cue if vtt else f"{segment['id'] + 1}\n{cue}")
    body = "\n\n".join(blocks) + "\n"
    return f"WEBVTT\n\n{body}" if vtt else body


def _chosen(chooser: BehaviorChooser | None, body: dict[str, Any], default: Behavior) -> Behavior:
    return chooser(body) if chooser is not None else default


class FakeOpenAI:
    """OpenAI-compatible HTTP server on loopback, scripted per request with `Behavior`s."""

    default_chat: Behavior
    default_embeddings: Behavior
    default_transcription: Behavior
    moderation_flags: dict[str, str]
    moderation_error_status: int
    # Seconds each moderation answer is held back when its input contains `moderation_delay_marker` (all
    # inputs when the marker is empty).
    moderation_delay: float
    moderation_delay_marker: str
    chat_chooser: BehaviorChooser | None
    embeddings_chooser: BehaviorChooser | None
    _chat_queue: deque[Behavior]
    _embedding_queue: deque[Behavior]
    _transcription_queue: deque[Behavior]
    _requests: list[RecordedRequest]

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        api_key: str = "sk-test-fake",
        require_key: bool = True,
    ) -> None:
        self.host = host
        self.api_key = api_key
        self.require_key = require_key
        self._port = port
        self._lock = threading.Lock()
        self._lifecycle_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._stopping = False
        # A gauge of live streams, so reset() leaves it alone: a stream from an earlier test may still be
        # unwinding.
        self._active_streams = 0
        self.reset()

    # ---- lifecycle -------------------------------------------------------------------------------

    def start(self) -> FakeOpenAI:
        """Serve in a background thread; calling it again while running does nothing.

        After stop(), start() binds the same port again so `base_url` stays valid.
        """
        with self._lifecycle_lock:
            if self._thread is not None:
                return self
            loop = asyncio.new_event_loop()
            ready = threading.Event()
            failures: list[BaseException] = []
            thread = threading.Thread(target=self._serve, args=(loop, ready, failures), name="fake-openai", daemon=True)
            self._stopping = False
            thread.start()
            if not ready.wait(timeout=10):
                raise RuntimeError("fake OpenAI server did not start within 10 s")
            if failures:
                thread.join()
                raise RuntimeError(f"fake OpenAI server failed to start on {self.host}:{self._port}") from (failures[0])
            self._thread, self._loop = thread, loop
            return self

    def stop(self) -> None:
        """Stop serving; in-flight requests get a short grace period, then their connections close."""
        with self._lifecycle_lock:
            thread, loop = self._thread, self._loop
            if thread is None or loop is None:
                return
            self._stopping = True
            self._held.set()
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            self._thread = self._loop = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _serve(self, loop: asyncio.AbstractEventLoop, ready: threading.Event, failures: list[BaseException]) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._open())
        except BaseException as exc:
            failures.append(exc)
            ready.set()
            loop.close()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            if self._runner is not None:
                loop.run_until_complete(self._runner.cleanup())
                self._runner = None
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _open(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post(CHAT_PATH, self._handle_chat)
        app.router.add_post(EMBEDDINGS_PATH, self._handle_embeddings)
        app.router.add_post(TRANSCRIPTIONS_PATH, self._handle_transcription)
        app.router.add_post(MODERATIONS_PATH, self._handle_moderation)
        app.router.add_get("/v1/models", self._handle_models)
        app.router.add_route("*", "/{tail:.*}", self._handle_unknown)
        # handler_cancellation: a client that goes away cancels its handler at once, which is how
        # stream_disconnects notices a closed stream even between slowly paced tokens.
        runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=SHUTDOWN_GRACE_SECONDS)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self._port, reuse_address=True)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = runner.addresses[0][1]

    # ---- scripting and inspection ----------------------------------------------------------------

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("the fake OpenAI server has no port until start()")
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def reset(self) -> None:
        """Forget queued behaviors, recordings and counters (not the live active_streams gauge), and restore
        the default behaviors."""
        with self._lock:
            self._chat_queue = deque()
            self._embedding_queue = deque()
            self._transcription_queue = deque()
            self._requests = []
            self._stream_disconnects = 0
            self._completed_streams = 0
            self._dropped_streams = 0
            self._request_disconnects = 0
            self._request_count = 0
            self.default_chat = Behavior()
            self.default_embeddings = Behavior()
            self.default_transcription = Behavior(content=DEFAULT_TRANSCRIPT)
            self.moderation_flags = dict(DEFAULT_MODERATION_FLAGS)
            self.moderation_error_status = 0
            self.moderation_delay = 0.0
            self.moderation_delay_marker = ""
            self.chat_chooser = None
            self.embeddings_chooser = None
            self._held = threading.Event()

    def release_held(self) -> None:
        """Let streams held by `Behavior.hold_after_tokens` go on."""
        self._held.set()

    def enqueue_chat(self, *behaviors: Behavior) -> None:
        with self._lock:
            self._chat_queue.extend(behaviors)

    def enqueue_embeddings(self, *behaviors: Behavior) -> None:
        with self._lock:
            self._embedding_queue.extend(behaviors)

    def enqueue_transcriptions(self, *behaviors: Behavior) -> None:
        with self._lock:
            self._transcription_queue.extend(behaviors)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def _requests_to(self, path: str) -> list[RecordedRequest]:
        return [request for request in self.requests if request.path == path]

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return self._requests_to(CHAT_PATH)

    @property
    def embedding_requests(self) -> list[RecordedRequest]:
        return self._requests_to(EMBEDDINGS_PATH)

    @property
    def transcription_requests(self) -> list[RecordedRequest]:
        return self._requests_to(TRANSCRIPTIONS_PATH)

    @property
    def moderation_requests(self) -> list[RecordedRequest]:
        return self._requests_to(MODERATIONS_PATH)

    @property
    def active_streams(self) -> int:
        """Streaming responses whose body is still being written."""
        with self._lock:
            return self._active_streams

    @property
    def stream_disconnects(self) -> int:
        """Streams the client abandoned before the server finished writing them."""
        with self._lock:
            return self._stream_disconnects

    @property
    def completed_streams(self) -> int:
        with self._lock:
            return self._completed_streams

    @property
    def dropped_streams(self) -> int:
        """Streams the server cut on purpose (`drop_after_tokens`)."""
        with self._lock:
            return self._dropped_streams

    @property
    def request_disconnects(self) -> int:
        """Non-streaming requests the client abandoned while the server was still delaying its reply."""
        with self._lock:
            return self._request_disconnects

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        """Poll `predicate` until it holds or `timeout` passes; blocks the calling thread."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    # Same parameter name as wait_for on purpose, so the two are interchangeable.
    async def wait_for_async(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:  # noqa: ASYNC109
        """Like wait_for, but yields to the caller's event loop while polling."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    # ---- request plumbing ------------------------------------------------------------------------

    def _next_behavior(self, queue: deque[Behavior], default: Callable[[], Behavior]) -> Behavior:
        # The default is computed outside the lock: a chooser may inspect the server (e.g. `requests`).
        with self._lock:
            queued = queue.popleft() if queue else None
        return queued if queued is not None else default()

    def _bump(self, counter: str, delta: int = 1) -> None:
        with self._lock:
            setattr(self, counter, getattr(self, counter) + delta)

    def _record(self, request: web.Request, body: dict[str, Any]) -> str:
        headers = {name.lower(): value for name, value in request.headers.items()}
        with self._lock:
            self._requests.append(RecordedRequest(path=request.path, headers=headers, body=body))
            self._request_count += 1
            return f"req_fake{self._request_count:06d}"

    async def _json_body(self, request: web.Request) -> dict[str, Any]:
        raw = await request.text()
        try:
            parsed = json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            return {"_raw": raw}
        return parsed if isinstance(parsed, dict) else {"_raw": raw}

    def _auth_failure(self, request: web.Request) -> web.Response | None:
        if not self.require_key or request.headers.get("Authorization") == f"Bearer {self.api_key}":
            return None
        return _error_response(401, "Incorrect API key provided", code="invalid_api_key")

    async def _pause(self, seconds: float) -> None:
        """Delay a non-streaming reply, noticing a client that gives up meanwhile."""
        if seconds <= 0:
            return
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            if not self._stopping:
                self._bump("_request_disconnects")
            raise

    async def _scripted_error(self, behavior: Behavior, request_id: str) -> web.Response:
        await self._pause(behavior.first_token_delay)
        headers = {"x-request-id": request_id}
        if behavior.retry_after is not None:
            headers["Retry-After"] = f"{behavior.retry_after:g}"
        return _error_response(behavior.status, behavior.error_message, headers)

    # ---- endpoints -------------------------------------------------------------------------------

    async def _handle_chat(self, request: web.Request) -> web.StreamResponse:
        body = await self._json_body(request)
        request_id = self._record(request, body)
        if (denied := self._auth_failure(request)) is not None:
            return denied
        behavior = self._next_behavior(self._chat_queue, lambda: _chosen(self.chat_chooser, body, self.default_chat))
        if behavior.status >= 400:
            return await self._scripted_error(behavior, request_id)
        if "_raw" in body or not isinstance(body.get("messages"), list):
            return _error_response(400, "'messages' is a required property")

        messages = [message for message in body["messages"] if isinstance(message, dict)]
        if behavior.json_content is not None:
            content = json.dumps(behavior.json_content)
        elif behavior.content is not None:
            content = behavior.content
        else:
            user_texts = [_message_text(m.get("content")) for m in messages if m.get("role") == "user"]
            content = f"You said: {user_texts[-1] if user_texts else ''}"
        tokens = split_tokens(content)
        prompt_tokens = behavior.prompt_tokens
        if prompt_tokens is None:
            prompt_tokens = sum(count_words(_message_text(m.get("content"))) for m in messages)
        completion_tokens = behavior.completion_tokens
        if completion_tokens is None:
            completion_tokens = len(tokens)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        envelope = {
            "id": f"chatcmpl-{request_id}",
            "created": int(time.time()),
            "model": body.get("model", "gpt-4o-mini"),
            "system_fingerprint": "fp_fake",
        }
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return await self._stream_chat(request, behavior, tokens, envelope, usage if include_usage else None)

        await self._pause(behavior.first_token_delay)
        message = {"role": "assistant", "content": content, "refusal": None}
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": behavior.finish_reason}
        completion = {**envelope, "object": "chat.completion", "choices": [choice], "usage": usage}
        return web.json_response(completion, headers={"x-request-id": request_id})

    async def _stream_chat(
        self,
        request: web.Request,
        behavior: Behavior,
        tokens: list[str],
        envelope: dict[str, Any],
        usage: dict[str, int] | None,
    ) -> web.StreamResponse:
        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            payload: dict[str, Any] = {**envelope, "object": "chat.completion.chunk", "choices": [choice]}
            if usage is not None:
                payload["usage"] = None
            return _sse(payload)

        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
                "x-request-id": envelope["id"].removeprefix("chatcmpl-"),
            }
        )
        await response.prepare(request)
        self._bump("_active_streams")
        try:
            if behavior.first_token_delay > 0:
                await asyncio.sleep(behavior.first_token_delay)
            await response.write(chunk({"role": "assistant", "content": "", "refusal": None}))
            loop = asyncio.get_running_loop()
            started = loop.time()
            for index, token in enumerate(tokens):
                if behavior.tokens_per_second:
                    # Pace against the start time so per-write overhead does not accumulate.
                    delay = started + index / behavior.tokens_per_second - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                if behavior.drop_after_tokens is not None and index >= behavior.drop_after_tokens:
                    break
                if index == behavior.hold_after_tokens:
                    await asyncio.to_thread(self._held.wait, HOLD_LIMIT_SECONDS)
                await response.write(chunk({"content": token}))
            if behavior.drop_after_tokens is not None:
                await self._drop_connection(request)
                self._bump("_dropped_streams")
                return response
            await response.write(chunk({}, behavior.finish_reason))
            if usage is not None:
                await response.write(
                    _sse({**envelope, "object": "chat.completion.chunk", "choices": [], "usage": usage})
                )
            await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
        except asyncio.CancelledError:
            if not self._stopping:
                self._bump("_stream_disconnects")
            raise
        except ConnectionResetError:
            if not self._stopping:
                self._bump("_stream_disconnects")
            return response
        else:
            self._bump("_completed_streams")
            return response
        finally:
            self._bump("_active_streams", -1)

    async def _drop_connection(self, request: web.Request) -> None:
        """Cut the connection without finishing the chunked body, after flushing what was written."""
        transport = request.transport
        if transport is None:
            return
        for _ in range(200):
            if transport.get_write_buffer_size() == 0:
                break
            await asyncio.sleep(0.005)
        transport.abort()

    async def _handle_embeddings(self, request: web.Request) -> web.StreamResponse:
        body = await self._json_body(request)
        request_id = self._record(request, body)
        if (denied := self._auth_failure(request)) is not None:
            return denied
        behavior = self._next_behavior(
            self._embedding_queue, lambda: _chosen(self.embeddings_chooser, body, self.default_embeddings)
        )
        if behavior.status >= 400:
            return await self._scripted_error(behavior, request_id)
        texts = _embedding_inputs(body.get("input"))
        if texts is None or any(text == "" for text in texts):
            return _error_response(400, "'input' must be a non-empty string or array of non-empty strings")
        dimensions = body.get("dimensions") or DEFAULT_EMBEDDING_DIMENSIONS
        if not isinstance(dimensions, int) or dimensions < 1:
            return _error_response(400, "'dimensions' must be a positive integer")
        as_base64 = body.get("encoding_format") == "base64"

        data = []
        for index, text in enumerate(texts):
            vector = embedding_for(text, dimensions)
            encoded: str | list[float] = (
                base64.b64encode(vector.astype("<f4").tobytes()).decode() if as_base64 else vector.tolist()
            )
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        prompt_tokens = behavior.prompt_tokens
        if prompt_tokens is None:
            prompt_tokens = sum(count_words(text) for text in texts)
        await self._pause(behavior.first_token_delay)
        payload = {
            "object": "list",
            "data": data,
            "model": body.get("model", "text-embedding-3-small"),
            "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
        }
        return web.json_response(payload, headers={"x-request-id": request_id})

    async def _handle_moderation(self, request: web.Request) -> web.StreamResponse:
        """Flags an input containing a key of `moderation_flags` with that key's category (score 0.97); answers
        `moderation_error_status` instead when it is set; holds the answer back `moderation_delay` seconds when the
        input contains `moderation_delay_marker`."""
        body = await self._json_body(request)
        request_id = self._record(request, body)
        if (denied := self._auth_failure(request)) is not None:
            return denied
        if self.moderation_error_status:
            return _error_response(self.moderation_error_status, "moderation is unavailable")
        text = body.get("input")
        if not isinstance(text, str) or not text:
            return _error_response(400, "'input' must be a non-empty string")
        if self.moderation_delay and self.moderation_delay_marker in text:
            await asyncio.sleep(self.moderation_delay)
        hits = {category for marker, category in self.moderation_flags.items() if marker in text.lower()}
        result = {
            "flagged": bool(hits),
            "categories": {category: category in hits for category in MODERATION_CATEGORIES},
            "category_scores": {category: 0.97 if category in hits else 0.01 for category in MODERATION_CATEGORIES},
            "category_applied_input_types": {category: ["text"] for category in MODERATION_CATEGORIES},
        }
        payload = {"id": f"modr-{request_id}", "model": body.get("model", ""), "results": [result]}
        return web.json_response(payload, headers={"x-request-id": request_id})

    async def _handle_transcription(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        fields: dict[str, Any] = {}
        for name, value in form.items():
            if isinstance(value, web.FileField):
                fields["file_size"] = len(value.file.read())
                fields["filename"] = value.filename
            else:
                fields[name] = value
        request_id = self._record(request, fields)
        if (denied := self._auth_failure(request)) is not None:
            return denied
        behavior = self._next_behavior(self._transcription_queue, lambda: self.default_transcription)
        if behavior.status >= 400:
            return await self._scripted_error(behavior, request_id)
        if "file_size" not in fields:
            return _error_response(400, "'file' is a required property")

        text = behavior.content if behavior.content is not None else DEFAULT_TRANSCRIPT
        segments = _transcript_segments(text)
        duration = len(segments) * TRANSCRIPT_SEGMENT_SECONDS
        response_format = fields.get("response_format", "json")
        await self._pause(behavior.first_token_delay)
        headers = {"x-request-id": request_id}
        if response_format == "text":
            return web.Response(text=text, headers=headers)
        if response_format in ("srt", "vtt"):
            return web.Response(text=_subtitles(segments, vtt=response_format == "vtt"), headers=headers)
        if response_format == "verbose_json":
            verbose = {
                "task": "transcribe",
                "language": fields.get("language") or "english",
                "duration": duration,
                "text": text,
                "segments": segments,
                "usage": {"type": "duration", "seconds": int(duration + 0.999)},
            }
            return web.json_response(verbose, headers=headers)
        if response_format == "json":
            return web.json_response({"text": text}, headers=headers)
        return _error_response(400, f"unsupported response_format {response_format!r}")

    async def _handle_models(self, request: web.Request) -> web.StreamResponse:
        self._record(request, {})
        if (denied := self._auth_failure(request)) is not None:
            return denied
        created = int(time.time())
        models = [{"id": model, "object": "model", "created": created, "owned_by": "fake"} for model in MODEL_IDS]
        return web.json_response({"object": "list", "data": models})

    async def _handle_unknown(self, request: web.Request) -> web.StreamResponse:
        body = await self._json_body(request) if request.can_read_body else {}
        self._record(request, body)
        return _error_response(404, f"Unknown request URL: {request.method} {request.path}")
