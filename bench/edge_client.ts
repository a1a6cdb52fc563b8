// The browser's client library (Connect-ES over grpc-web, fetch) timing calls through Envoy, for
// bench/bench_edge.py. Env: BASE_URL, TOKEN, SESSION, QUESTION, COUNT, WARMUP. Prints JSON milliseconds.
import { createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { AgentService } from "../generated/ts/tutorstream/v1/agent_service_pb.js";
import { ChatService } from "../generated/ts/tutorstream/v1/chat_service_pb.js";

declare const process: { env: Record<string, string | undefined>; stdout: { write(text: string): void } };

const token = process.env.TOKEN ?? "";
const transport = createGrpcWebTransport({
  baseUrl: process.env.BASE_URL ?? "http://127.0.0.1:8080",
  interceptors: [
    (next) => async (request) => {
      request.header.set("authorization", `Bearer ${token}`);
      return next(request);
    },
  ],
});
const agents = createClient(AgentService, transport);
const chat = createClient(ChatService, transport);
const count = Number(process.env.COUNT ?? "100");
const warmup = Number(process.env.WARMUP ?? "20");
const session = process.env.SESSION ?? "";
const question = process.env.QUESTION ?? "How do I center an item?";

async function unary(): Promise<void> {
  await agents.getPreferences({ name: "users/me/preferences" });
}

async function stream(): Promise<[number, number]> {
  const started = performance.now();
  let first = -1;
  for await (const chunk of chat.streamChat({ session, message: question })) {
    if (first < 0 && chunk.text) {
      first = performance.now() - started;
    }
  }
  return [first, performance.now() - started];
}

const result = { unary: [] as number[], first: [] as number[], total: [] as number[] };
for (let i = 0; i < warmup; i += 1) {
  await unary();
}
for (let i = 0; i < count; i += 1) {
  const started = performance.now();
  await unary();
  result.unary.push(performance.now() - started);
}
if (session) {
  await stream();
  for (let i = 0; i < Math.max(1, Math.floor(count / 5)); i += 1) {
    const [first, total] = await stream();
    result.first.push(first);
    result.total.push(total);
  }
}
process.stdout.write(JSON.stringify(result));
