"""Review pointers for interventions (runtime.agents.review_for): earlier course content that the current
stretch builds on, cited, and recorded as an interaction."""

from __future__ import annotations

import pytest

from server.core.auth import Principal, Role, Tier
from server.core.errors import FailedPrecondition
from tests.agents.conftest import COURSE_ID, interactions_of
from tests.conftest import RunningServer

STUDENT = Principal(user_id="reviewer", role=Role.STUDENT, tier=Tier.FREE)


async def test_a_review_points_at_earlier_content(offline_server: RunningServer) -> None:
    agents = offline_server.server.runtime.agents
    corpus_order = ["flexbox-layout", "async-javascript", "react-state-effects", "http-caching"]
    review = await agents.review_for(STUDENT, video_id="react-state-effects", course_id=COURSE_ID, position_seconds=380)
    citation = review.citation
    earlier_video = corpus_order.index(citation.video_id) < corpus_order.index("react-state-effects")
    earlier_here = citation.video_id == "react-state-effects" and citation.end_seconds <= 380 - 60
    assert earlier_video or earlier_here
    chunks = await offline_server.server.runtime.search.get_chunks([citation.chunk_id])
    assert [(c.video_id, c.start_seconds, c.end_seconds) for c in chunks] == [
        (citation.video_id, citation.start_seconds, citation.end_seconds)
    ]
    assert review.text.startswith("This part builds on “") and review.concepts
    assert any(concept.casefold() in chunks[0].text.casefold() for concept in review.concepts)
    assert 0 < review.confidence <= 1
    (row,) = await interactions_of(offline_server, "reviewer")
    assert row["agent_type"] == "intervention" and row["id"] == review.interaction_id
    assert row["attributes"]["kind"] == "review"


async def test_there_is_nothing_to_review_at_the_very_start(offline_server: RunningServer) -> None:
    agents = offline_server.server.runtime.agents
    with pytest.raises(FailedPrecondition) as error:
        await agents.review_for(STUDENT, video_id="flexbox-layout", course_id=COURSE_ID, position_seconds=5)
    assert error.value.reason == "NO_REVIEW_CONTENT"
