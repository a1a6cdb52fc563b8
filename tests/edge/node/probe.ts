// A Connect-ES grpc-web client run under Node: the same transport and error decoder the browser demo uses,
// pointed at Envoy. Usage: node probe.mjs SCENARIO (env: BASE_URL, TOKEN, VIDEO_ID). Prints one JSON object.
import { createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { Health } from "../../../build/web-gen/ts/grpc_health/v1/health_pb.js";
import { AgentService } from "../../../generated/ts/tutorstream/v1/agent_service_pb.js";
import { ChatService } from "../../../generated/ts/tutorstream/v1/chat_service_pb.js";
import { describeError } from "../../../clients/web/src/errors.js";

declare const process: {
  argv: string[];
  env: Record<string, string | undefined>;
  stdout: { write(text: string): void };
  exitCode?: number;
};

const baseUrl = process.env.BASE_URL ?? "http://127.0.0.1:8080";
const token = process.env.TOKEN ?? "";
const transport = createGrpcWebTransport({
  baseUrl,
  interceptors: [
    (next) => async (request) => {
      if (token) {
        request.header.set("authorization", `Bearer ${token}`);
      }
      return next(request);
    },
  ],
});
const agents = createClient(AgentService, transport);
const chat = createClient(ChatService, transport);
const health = createClient(Health, transport);

type Result = Record<string, unknown>;

async function failure(call: () => Promise<unknown>): Promise<Result> {
  try {
    await call();
  } catch (error) {
    return { failed: true, ...describeError(error) };
  }
  return { failed: false };
}

const scenarios: Record<string, () => Promise<Result>> = {
  async unary() {
    const response = await agents.getPreferences({ name: "users/me/preferences" });
    return { name: response.preferences?.name, personality: response.preferences?.personality };
  },

  async "update-unicode-error"() {
    return failure(() =>
      agents.updatePreferences({
        preferences: { name: "users/me/preferences" },
        updateMask: { paths: ["thème_préféré_😀"] },
      }),
    );
  },

  async unauthenticated() {
    return failure(() => agents.getPreferences({ name: "users/me/preferences" }));
  },

  async "health-watch"() {
    const controller = new AbortController();
    const statuses: number[] = [];
    try {
      for await (const response of health.watch({ service: "" }, { signal: controller.signal })) {
        statuses.push(response.status);
        controller.abort();
      }
    } catch (error) {
      const problem = describeError(error);
      if (problem.codeName !== "CANCELED") {
        return { failed: true, ...problem };
      }
    }
    return { statuses };
  },

  async "stream-chat"() {
    const created = await chat.createSession({
      title: "edge probe",
      learningContext: { videoId: process.env.VIDEO_ID ?? "", courseId: process.env.COURSE_ID ?? "" },
    });
    const session = created.session?.name ?? "";
    const chunks: { text: string; finishReason: number; citations: number }[] = [];
    for await (const chunk of chat.streamChat({ session, message: process.env.QUESTION ?? "What is this about?" })) {
      chunks.push({ text: chunk.text, finishReason: chunk.finishReason, citations: chunk.citations.length });
    }
    return { session, chunks };
  },

  async "stream-error"() {
    return failure(async () => {
      const session = process.env.SESSION ?? "sessions/does-not-exist-ü";
      for await (const chunk of chat.streamChat({ session, message: "hello" })) {
        void chunk;
      }
    });
  },
};

const name = process.argv[2] ?? "";
const scenario = scenarios[name];
if (scenario === undefined) {
  process.stdout.write(JSON.stringify({ error: `unknown scenario ${name}` }));
  process.exitCode = 2;
} else {
  const result = await scenario();
  process.stdout.write(JSON.stringify(result, (_key, value) => (typeof value === "bigint" ? String(value) : value)));
}
