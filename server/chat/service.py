"""Chat sessions, their history and references; StreamChat turns are run by `server.chat.turn`.

Every method takes the caller's principal and touches only the caller's sessions: another user's session
answers exactly like a missing one (NOT_FOUND), and that check runs before the request's other fields are
validated (AIP-211).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncGenerator, Sequence
from datetime import datetime

from server.chat import repository as repo
from server.chat.domain import (
    ChatEvent,
    LearningContext,
    MessageInfo,
    Page,
    ReferenceInfo,
    SessionInfo,
    message_info,
    reference_info,
    session_info,
)
from server.chat.models import ChatSession, TranscriptReference
from server.chat.turn import TurnRunner
from server.chat.validation import (
    MAX_REFERENCE_SECONDS,
    validate_context,
    validate_range,
    validate_title,
)
from server.core.auth import Principal
from server.core.db import Database
from server.core.errors import FailedPrecondition, FieldViolation, InvalidArgument, NotFound
from server.core.names import require_id
from server.core.pagination import decode_page_token, encode_page_token, page_size
from server.core.users import ensure_user
from server.core.values import SearchHit
from server.nlp.sentence import StoredSentence
from server.transcripts.search import TranscriptSearch
from server.transcripts.sentences import SentenceStore

MAX_REFERENCES_PER_SESSION = 20
MAX_REFERENCE_TEXT_CHARS = 6000
# A range may end a little past the last cue (players report durations rounded up).
DURATION_TOLERANCE_SECONDS = 1.0


def _not_found() -> NotFound:
    return NotFound("session not found", reason="SESSION_NOT_FOUND")


def range_text(sentences: Sequence[StoredSentence], hits: Sequence[SearchHit]) -> str:
    """The transcript text of a range: its sentences (stored at ingest), or, for a transcript whose sentences
    are not analysed yet, the text of the chunks overlapping it."""
    joined = " ".join(sentence.text for sentence in sentences) or " ".join(hit.text for hit in hits)
    joined = re.sub(r"\s+", " ", joined).strip()
    if len(joined) > MAX_REFERENCE_TEXT_CHARS:
        joined = joined[:MAX_REFERENCE_TEXT_CHARS].rsplit(" ", 1)[0] + "…"
    return joined


class ChatService:
    def __init__(
        self, database: Database, search: TranscriptSearch, sentences: SentenceStore, turns: TurnRunner
    ) -> None:
        self._db = database
        self._search = search
        self._sentences = sentences
        self._turns = turns

    # --- sessions ------------------------------------------------------------------------------------------

    async def create_session(self, principal: Principal, title: str, context: LearningContext) -> SessionInfo:
        title = validate_title(title)
        context = validate_context(context)
        selected = context.selected_range
        async with self._db.transaction() as session:
            await ensure_user(session, principal)
            row = ChatSession(
                id=uuid.uuid4().hex,
                user_id=principal.user_id,
                title=title,
                course_id=context.course_id,
                video_id=context.video_id,
                position_seconds=context.position_seconds,
                selected_start_seconds=selected[0] if selected else None,
                selected_end_seconds=selected[1] if selected else None,
            )
            session.add(row)
            await session.flush()
            await session.refresh(row, ["create_time", "update_time"])
            return session_info(row, [], 0)

    async def get_session(self, principal: Principal, session_id: str) -> SessionInfo:
        async with self._db.reader() as session:
            row = await repo.get_session(session, session_id, principal.user_id)
            if row is None:
                raise _not_found()
            references = await repo.references_of(session, [row.id])
            counts = await repo.message_counts(session, [row.id])
            return session_info(row, references[row.id], counts[row.id])

    async def list_sessions(self, principal: Principal, requested_size: int, page_token: str) -> Page:
        limit = page_size(requested_size, default=20, maximum=100)
        after = decode_page_token(page_token, "sessions", (datetime, str))
        async with self._db.reader() as session:
            rows = await repo.list_sessions(session, principal.user_id, after=after, limit=limit + 1)
            page, more = rows[:limit], len(rows) > limit
            ids = [row.id for row in page]
            references = await repo.references_of(session, ids)
            counts = await repo.message_counts(session, ids)
        items = [session_info(row, references[row.id], counts[row.id]) for row in page]
        token = ""
        if more and page:
            last = page[-1]
            token = encode_page_token("sessions", [last.create_time, last.id])
        return Page(items=items, next_page_token=token)

    async def delete_session(self, principal: Principal, session_id: str) -> None:
        async with self._db.transaction() as session:
            if not await repo.delete_session(session, session_id, principal.user_id):
                raise _not_found()

    # --- messages ------------------------------------------------------------------------------------------

    async def list_messages(self, principal: Principal, session_id: str, requested_size: int, page_token: str) -> Page:
        async with self._db.reader() as session:
            if await repo.get_session(session, session_id, principal.user_id) is None:
                raise _not_found()
            limit = page_size(requested_size, default=50, maximum=200)
            key = decode_page_token(page_token, f"messages:{session_id}", (int,))
            after_seq: int | None = key[0] if key is not None else None
            rows = await repo.list_messages(session, session_id, after_seq=after_seq, limit=limit + 1)
        page, more = rows[:limit], len(rows) > limit
        token = encode_page_token(f"messages:{session_id}", [page[-1].seq]) if more and page else ""
        items: list[MessageInfo] = [message_info(row) for row in page]
        return Page(items=items, next_page_token=token)

    async def clear_messages(self, principal: Principal, session_id: str) -> int:
        async with self._db.transaction() as session:
            if await repo.touch_owned_session(session, session_id, principal.user_id) is None:
                raise _not_found()
            return await repo.clear_messages(session, session_id)

    def stream_chat(
        self,
        principal: Principal,
        session_id: str,
        message: str,
        context_override: LearningContext | None,
        deadline: float | None,
    ) -> AsyncGenerator[ChatEvent, None]:
        return self._turns.run(principal, session_id, message, context_override, deadline)

    # --- references ----------------------------------------------------------------------------------------

    async def add_reference(
        self,
        principal: Principal,
        session_id: str,
        video_id: str,
        start: float,
        end: float,
        *,
        range_given: bool = True,
    ) -> ReferenceInfo:
        async with self._db.session() as session:
            if await repo.get_session(session, session_id, principal.user_id) is None:
                raise _not_found()
        require_id(video_id, "video_id")
        if not range_given:
            raise InvalidArgument.field("range", "is required: the selected start and end in seconds")
        violations = validate_range(start, end, "range")
        if not violations and end - start > MAX_REFERENCE_SECONDS:
            violations.append(FieldViolation("range", f"must span at most {MAX_REFERENCE_SECONDS:g} seconds"))
        if violations:
            raise InvalidArgument("; ".join(f"{v.field}: {v.description}" for v in violations), violations=violations)
        video = await self._search.video_info(video_id)
        if video is None:
            raise NotFound(f"video {video_id} has no transcript", reason="VIDEO_NOT_FOUND")
        if start >= video.duration_seconds or end > video.duration_seconds + DURATION_TOLERANCE_SECONDS:
            raise InvalidArgument.field("range", f"must lie inside the video (0 to {video.duration_seconds:g} seconds)")
        stored = await self._sentences.in_ranges([(video_id, start, end)])
        text = range_text(stored, [] if stored else await self._search.chunks_in_range(video_id, start, end))
        async with self._db.transaction() as session:
            if await repo.touch_owned_session(session, session_id, principal.user_id) is None:
                raise _not_found()
            existing = await repo.references_of(session, [session_id])
            if len(existing[session_id]) >= MAX_REFERENCES_PER_SESSION:
                raise FailedPrecondition(
                    f"a session holds at most {MAX_REFERENCES_PER_SESSION} references; remove one first",
                    reason="TOO_MANY_REFERENCES",
                )
            row = await repo.add_reference(
                session,
                TranscriptReference(
                    id=uuid.uuid4().hex,
                    session_id=session_id,
                    video_id=video_id,
                    start_seconds=start,
                    end_seconds=end,
                    text=text,
                ),
            )
            return reference_info(row)

    async def remove_reference(self, principal: Principal, session_id: str, reference_id: str) -> None:
        async with self._db.transaction() as session:
            if await repo.touch_owned_session(session, session_id, principal.user_id) is None:
                raise _not_found()
            require_id(reference_id, "reference_id")
            if not await repo.remove_reference(session, session_id, reference_id):
                raise NotFound("reference not found", reason="REFERENCE_NOT_FOUND")
