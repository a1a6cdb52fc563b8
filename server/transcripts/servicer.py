"""TranscriptService transport: proto in, names parsed, domain service called, proto out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from grpc import aio
from tutorstream.v1 import transcript_service_pb2 as pb
from tutorstream.v1 import transcript_service_pb2_grpc as pb_grpc

from server.core.errors import InvalidArgument
from server.core.names import parse_name
from server.core.request_context import current_principal
from server.transcripts.asr_service import MediaRequest, MediaTranscriptionService, UploadRequest
from server.transcripts.courses import CourseInstructorService, require_instructor_role
from server.transcripts.protos import (
    FORMAT_FROM_PROTO,
    ROLE_FROM_PROTO,
    hit_to_proto,
    instructor_to_proto,
    job_to_proto,
    transcript_to_proto,
)
from server.transcripts.service import IngestRequest, TranscriptService

JOB_NAME = "ingestJobs/{job}"
COURSE_NAME = "courses/{course}"
INSTRUCTOR_NAME = "courses/{course}/instructors/{user}"
TRANSCRIPT_NAME = "videos/{video}/transcript"


class TranscriptServicer(pb_grpc.TranscriptServiceServicer):
    def __init__(
        self, service: TranscriptService, media: MediaTranscriptionService, instructors: CourseInstructorService
    ) -> None:
        self._service = service
        self._media = media
        self._instructors = instructors

    async def IngestTranscript(
        self, request: pb.IngestTranscriptRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.IngestTranscriptResponse:
        principal = current_principal()
        job = await self._service.ingest(
            principal,
            IngestRequest(
                request_id=request.request_id,
                video_id=request.video_id,
                course_id=request.course_id,
                title=request.title,
                format=FORMAT_FROM_PROTO.get(request.format, ""),
                content=request.content,
                language=request.language,
                duration_seconds=request.duration_seconds,
            ),
        )
        return pb.IngestTranscriptResponse(job=job_to_proto(job))

    async def GetIngestJob(
        self, request: pb.GetIngestJobRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.GetIngestJobResponse:
        principal = current_principal()
        require_instructor_role(principal, "read ingest jobs")
        (job_id,) = parse_name(request.name, JOB_NAME, "name")
        return pb.GetIngestJobResponse(job=job_to_proto(await self._service.get_job(principal, job_id)))

    async def WatchIngestJob(
        self, request: pb.WatchIngestJobRequest, context: aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.WatchIngestJobResponse]:
        principal = current_principal()
        require_instructor_role(principal, "read ingest jobs")
        (job_id,) = parse_name(request.name, JOB_NAME, "name")
        updates = self._service.watch_job(principal, job_id)
        try:
            async for job in updates:
                yield pb.WatchIngestJobResponse(job=job_to_proto(job))
        finally:
            await updates.aclose()

    async def GetTranscript(
        self, request: pb.GetTranscriptRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.GetTranscriptResponse:
        principal = current_principal()
        (video_id,) = parse_name(request.name, TRANSCRIPT_NAME, "name")
        full = request.view == pb.TRANSCRIPT_VIEW_FULL
        view = await self._service.get_transcript(principal, video_id, full=full)
        return pb.GetTranscriptResponse(transcript=transcript_to_proto(view))

    async def ListTranscripts(
        self, request: pb.ListTranscriptsRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.ListTranscriptsResponse:
        principal = current_principal()
        views, next_token = await self._service.list_transcripts(
            principal, course_id=request.course_id, page_size=request.page_size, page_token=request.page_token
        )
        return pb.ListTranscriptsResponse(
            transcripts=[transcript_to_proto(view) for view in views], next_page_token=next_token
        )

    async def DeleteTranscript(
        self, request: pb.DeleteTranscriptRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.DeleteTranscriptResponse:
        principal = current_principal()
        require_instructor_role(principal, "delete transcripts")
        (video_id,) = parse_name(request.name, TRANSCRIPT_NAME, "name")
        await self._service.delete_transcript(principal, video_id)
        return pb.DeleteTranscriptResponse()

    async def SearchTranscripts(
        self, request: pb.SearchTranscriptsRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.SearchTranscriptsResponse:
        principal = current_principal()
        window = (
            (request.time_window.start_seconds, request.time_window.end_seconds)
            if request.HasField("time_window")
            else None
        )
        outcome = await self._service.search(
            principal,
            query=request.query,
            video_id=request.video_id,
            course_id=request.course_id,
            time_window=window,
            limit=request.limit,
        )
        return pb.SearchTranscriptsResponse(
            results=[hit_to_proto(hit) for hit in outcome.hits],
            embedding_model=outcome.embedding_model,
        )

    async def TranscribeMedia(
        self, request: pb.TranscribeMediaRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.TranscribeMediaResponse:
        job = await self._media.transcribe(
            current_principal(),
            MediaRequest(
                request_id=request.request_id,
                video_id=request.video_id,
                course_id=request.course_id,
                title=request.title,
                language=request.language,
                media_url=request.media_url,
                media_path=request.media_path,
            ),
        )
        return pb.TranscribeMediaResponse(job=job_to_proto(job))

    async def UploadMedia(
        self, request_iterator: AsyncIterator[pb.UploadMediaRequest], context: aio.ServicerContext[Any, Any]
    ) -> pb.UploadMediaResponse:
        principal = current_principal()
        require_instructor_role(principal, "transcribe media")
        first = await anext(aiter(request_iterator), None)
        if first is None or first.WhichOneof("payload") != "metadata":
            raise InvalidArgument.field("metadata", "the first message must carry the upload's metadata")
        metadata = first.metadata

        async def chunks() -> AsyncIterator[bytes]:
            async for message in request_iterator:
                if message.WhichOneof("payload") != "chunk":
                    raise InvalidArgument.field("chunk", "every message after the first must carry a chunk")
                yield message.chunk

        job = await self._media.upload(
            principal,
            UploadRequest(
                request_id=metadata.request_id,
                video_id=metadata.video_id,
                course_id=metadata.course_id,
                total_bytes=metadata.total_bytes,
                title=metadata.title,
                language=metadata.language,
                filename=metadata.filename,
            ),
            chunks(),
        )
        return pb.UploadMediaResponse(job=job_to_proto(job))

    async def ListCourseInstructors(
        self, request: pb.ListCourseInstructorsRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.ListCourseInstructorsResponse:
        (course_id,) = parse_name(request.parent, COURSE_NAME, "parent")
        views, next_token = await self._instructors.list(
            current_principal(), course_id, size=request.page_size, token=request.page_token
        )
        return pb.ListCourseInstructorsResponse(
            instructors=[instructor_to_proto(view) for view in views], next_page_token=next_token
        )

    async def CreateCourseInstructor(
        self, request: pb.CreateCourseInstructorRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.CreateCourseInstructorResponse:
        (course_id,) = parse_name(request.parent, COURSE_NAME, "parent")
        view = await self._instructors.add(
            current_principal(), course_id, request.user_id, ROLE_FROM_PROTO.get(request.role, "")
        )
        return pb.CreateCourseInstructorResponse(instructor=instructor_to_proto(view))

    async def DeleteCourseInstructor(
        self, request: pb.DeleteCourseInstructorRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.DeleteCourseInstructorResponse:
        course_id, user_id = parse_name(request.name, INSTRUCTOR_NAME, "name")
        await self._instructors.remove(current_principal(), course_id, user_id)
        return pb.DeleteCourseInstructorResponse()
