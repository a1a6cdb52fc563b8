// The progress stream as browsers can speak it: player events go up in small batches (PublishVideoEvents),
// interventions come down on a server stream (StreamInterventions) that reconnects after transient failures.
import { Code, ConnectError } from "@connectrpc/connect";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import type { MessageInitShape } from "@bufbuild/protobuf";
import {
  VideoEventType,
  type Intervention,
  type VideoEventSchema,
} from "../../../generated/ts/tutorstream/v1/agent_service_pb.js";
import { InterventionType } from "../../../generated/ts/tutorstream/v1/common_pb.js";
import { citationChip } from "./citations.js";
import type { Page } from "./context.js";
import { button, h } from "./dom.js";
import { randomId, span } from "./format.js";
import type { PlayerEvent } from "./player.js";
import { toast } from "./toasts.js";

type VideoEventInit = MessageInitShape<typeof VideoEventSchema>;

const FLUSH_MS = 1_000;
const MAX_BATCH = 500;
const RETRY_MIN_MS = 1_000;
const RETRY_MAX_MS = 15_000;
// Failures that retrying cannot fix.
const FINAL_CODES = new Set([
  Code.Unimplemented,
  Code.Unauthenticated,
  Code.PermissionDenied,
  Code.InvalidArgument,
]);

const TITLES: Record<InterventionType, string> = {
  [InterventionType.UNSPECIFIED]: "From your tutor",
  [InterventionType.HINT]: "Stuck here? A hint",
  [InterventionType.QUIZ]: "Quick knowledge check",
  [InterventionType.REVIEW]: "Worth reviewing first",
  [InterventionType.BREAK]: "Time for a short break?",
};

export interface InterventionActions {
  quiz(intervention: Intervention): void;
}

export class ProgressReporter {
  readonly watchSessionId = `w-${randomId(20)}`;
  private queue: VideoEventInit[] = [];
  private sequence = 0;
  private flushing = false;
  private stopped = false;
  private publishFailed = false;
  private timer: number | undefined;
  private readonly stream = new AbortController();
  private readonly seen = new Set<string>();

  constructor(
    private readonly page: Page,
    private readonly video: { videoId: string; courseId: string; duration: number },
    private readonly actions: InterventionActions,
  ) {}

  start(): void {
    this.timer = window.setInterval(() => void this.flush(), FLUSH_MS);
    void this.listen();
  }

  record(event: PlayerEvent): void {
    if (this.stopped || this.publishFailed) {
      return;
    }
    const init: VideoEventInit = {
      eventId: `${this.watchSessionId}-${++this.sequence}`,
      type: event.type,
      positionSeconds: event.position,
      eventTime: timestampNow(),
    };
    if (event.type === VideoEventType.SEEKED) {
      init.seekFromSeconds = event.from ?? 0;
      init.seekToSeconds = event.to ?? event.position;
    }
    if (event.rate !== undefined) {
      init.playbackRate = event.rate;
    }
    this.queue.push(init);
    if (event.type === VideoEventType.SEEKED || event.type === VideoEventType.COMPLETED) {
      void this.flush();
    }
  }

  acknowledge(intervention: Intervention, accepted: boolean, position: number): void {
    if (this.publishFailed) {
      return;
    }
    this.queue.push({
      eventId: `${this.watchSessionId}-${++this.sequence}`,
      type: accepted ? VideoEventType.INTERVENTION_ACCEPTED : VideoEventType.INTERVENTION_DISMISSED,
      positionSeconds: position,
      interventionId: intervention.interventionId,
      eventTime: timestampNow(),
    });
    void this.flush();
  }

  async stop(position: number): Promise<void> {
    if (this.stopped) {
      return;
    }
    this.record({ type: VideoEventType.TERMINATED, position });
    this.stopped = true;
    window.clearInterval(this.timer);
    this.stream.abort();
    await this.flush();
  }

  private async flush(): Promise<void> {
    if (this.flushing || this.queue.length === 0) {
      return;
    }
    this.flushing = true;
    const batch = this.queue.slice(0, MAX_BATCH);
    try {
      await this.page.api.agents.publishVideoEvents({
        watchSessionId: this.watchSessionId,
        videoId: this.video.videoId,
        courseId: this.video.courseId,
        durationSeconds: this.video.duration,
        events: batch,
      });
      this.queue = this.queue.slice(batch.length);
    } catch (error) {
      if (FINAL_CODES.has(ConnectError.from(error).code)) {
        this.publishFailed = true;
        this.queue = [];
        this.page.fail(error, "Sending playback progress");
      }
    } finally {
      this.flushing = false;
    }
  }

  private async listen(): Promise<void> {
    let delay = RETRY_MIN_MS;
    while (!this.stopped) {
      try {
        for await (const response of this.page.api.agents.streamInterventions(
          { watchSessionId: this.watchSessionId, videoId: this.video.videoId, courseId: this.video.courseId },
          { signal: this.stream.signal },
        )) {
          delay = RETRY_MIN_MS;
          if (response.intervention) {
            this.show(response.intervention);
          }
        }
      } catch (error) {
        const code = ConnectError.from(error).code;
        if (this.stopped || code === Code.Canceled) {
          return;
        }
        if (FINAL_CODES.has(code)) {
          this.page.fail(error, "Listening for the tutor");
          return;
        }
      }
      await new Promise((resolve) => window.setTimeout(resolve, delay));
      delay = Math.min(RETRY_MAX_MS, delay * 2);
    }
  }

  private show(intervention: Intervention): void {
    if (this.seen.has(intervention.interventionId)) {
      return;
    }
    this.seen.add(intervention.interventionId);
    const kind = InterventionType[intervention.type].toLowerCase();
    const range = intervention.range;
    let element: HTMLElement | null = null;
    const settle = (accepted: boolean): void => {
      this.acknowledge(intervention, accepted, this.page.where().position);
      element?.remove();
    };
    const accept = button(
      intervention.type === InterventionType.QUIZ ? "Take the quiz" : "Show me",
      () => {
        settle(true);
        if (intervention.type === InterventionType.QUIZ) {
          this.actions.quiz(intervention);
        } else if (intervention.citation) {
          this.page.seekTo(intervention.citation);
        }
      },
      { class: "primary", "data-testid": "intervention-accept" },
    );
    const dismiss = button("Not now", () => settle(false), { "data-testid": "intervention-dismiss" });
    element = toast(
      `intervention type-${kind}`,
      "intervention",
      h("strong", { class: "toast-title" }, TITLES[intervention.type]),
      h("div", { class: "toast-context" }, intervention.reasonText),
      intervention.content ? h("p", { class: "toast-line" }, intervention.content) : null,
      range ? h("div", { class: "meta" }, `about ${span(range.startSeconds, range.endSeconds)}`) : null,
      intervention.citation ? citationChip(this.page, intervention.citation) : null,
      h("div", { class: "toast-actions" }, accept, dismiss),
    );
    element.dataset.reason = intervention.reason;
    element.dataset.type = kind;
  }
}
