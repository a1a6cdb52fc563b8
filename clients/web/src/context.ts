// What every panel needs to know about where the student is, and how to send them somewhere else.
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { Citation, LearningContextSchema } from "../../../generated/ts/tutorstream/v1/common_pb.js";
import type { Api } from "./api.js";
import type { Range } from "./transcript.js";

export type LearningContextInit = MessageInitShape<typeof LearningContextSchema>;

export interface Where {
  courseId: string;
  videoId: string;
  title: string;
  duration: number;
  position: number;
  selection: Range | null;
}

export interface Page {
  api: Api;
  where(): Where;
  /** Jump to a cited moment (switching video when the citation is in another one). */
  seekTo(citation: Pick<Citation, "videoId" | "startSeconds">): void;
  /** Report a failed call to the student (decoded from the status details). */
  fail(error: unknown, doing: string): void;
  usageChanged(): void;
  /** The student asked something: the transcript's markers of asked-about lines are refreshed. */
  questionsChanged(): void;
}

export function learningContext(where: Where): LearningContextInit {
  const context: LearningContextInit = {
    courseId: where.courseId,
    videoId: where.videoId,
    positionSeconds: where.position,
  };
  if (where.selection !== null) {
    context.selectedRange = { startSeconds: where.selection.start, endSeconds: where.selection.end };
  }
  return context;
}
