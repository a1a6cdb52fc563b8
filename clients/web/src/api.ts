// Connect-ES clients over grpc-web, through Envoy on the page's own origin, with the dev-login token.
import { createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { AgentService } from "../../../generated/ts/tutorstream/v1/agent_service_pb.js";
import { AnalyticsService } from "../../../generated/ts/tutorstream/v1/analytics_service_pb.js";
import { ChatService } from "../../../generated/ts/tutorstream/v1/chat_service_pb.js";
import { TranscriptService, type Transcript } from "../../../generated/ts/tutorstream/v1/transcript_service_pb.js";

export interface Api {
  chat: Client<typeof ChatService>;
  agents: Client<typeof AgentService>;
  transcripts: Client<typeof TranscriptService>;
  analytics: Client<typeof AnalyticsService>;
}

/** Every transcript the caller may see, page by page. */
export async function allTranscripts(api: Api): Promise<Transcript[]> {
  const found: Transcript[] = [];
  let pageToken = "";
  do {
    const response = await api.transcripts.listTranscripts({ pageSize: 200, pageToken });
    found.push(...response.transcripts);
    pageToken = response.nextPageToken;
  } while (pageToken);
  return found;
}

export function createApi(baseUrl: string, token: () => string | null): Api {
  const authorize: Interceptor = (next) => async (request) => {
    const value = token();
    if (value) {
      request.header.set("authorization", `Bearer ${value}`);
    }
    return next(request);
  };
  const transport = createGrpcWebTransport({ baseUrl, interceptors: [authorize] });
  return {
    chat: createClient(ChatService, transport),
    agents: createClient(AgentService, transport),
    transcripts: createClient(TranscriptService, transport),
    analytics: createClient(AnalyticsService, transport),
  };
}

const TOKEN_KEY = "tutorstream.token";

export interface Claims {
  sub: string;
  role: string;
  tier: string;
  exp: number;
  /** Courses an instructor teaches, as the token says. */
  courses: string[];
}

/** Reads `#token=...` (then removes it from the address bar), else the token kept for this tab. */
export function loadToken(): string | null {
  const params = new URLSearchParams(location.hash.slice(1));
  const fromHash = params.get("token");
  if (fromHash) {
    saveToken(fromHash);
    params.delete("token");
    const rest = params.toString();
    history.replaceState(null, "", `${location.pathname}${location.search}${rest ? `#${rest}` : ""}`);
    return fromHash;
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

export function saveToken(token: string): void {
  sessionStorage.setItem(TOKEN_KEY, token.trim());
}

export function forgetToken(): void {
  sessionStorage.removeItem(TOKEN_KEY);
}

/** The token's claims for display only; the server verifies the signature. */
export function readClaims(token: string): Claims | null {
  const payload = token.split(".")[1];
  if (!payload) {
    return null;
  }
  try {
    const json = atob(payload.replace(/-/g, "+").replace(/_/g, "/"));
    const claims = JSON.parse(json) as Partial<Claims>;
    return {
      sub: String(claims.sub ?? ""),
      role: String(claims.role ?? "student"),
      tier: String(claims.tier ?? ""),
      exp: Number(claims.exp ?? 0),
      courses: Array.isArray(claims.courses) ? claims.courses.map(String) : [],
    };
  } catch {
    return null;
  }
}

export function hashParam(name: string): string | null {
  return new URLSearchParams(location.hash.slice(1)).get(name);
}

export function setHashParam(name: string, value: string): void {
  const params = new URLSearchParams(location.hash.slice(1));
  params.set(name, value);
  history.replaceState(null, "", `${location.pathname}${location.search}#${params.toString()}`);
}
