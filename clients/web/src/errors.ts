// Turn a failed call into something a student can act on, from the google.rpc details the server attaches
// (grpc-status-details-bin, exposed through Envoy's CORS policy).
import { Code, ConnectError } from "@connectrpc/connect";
import {
  BadRequestSchema,
  ErrorInfoSchema,
  QuotaFailureSchema,
  RequestInfoSchema,
  RetryInfoSchema,
} from "../../../build/web-gen/ts/google/rpc/error_details_pb.js";

export interface Violation {
  subject: string;
  description: string;
}

export interface Problem {
  code: Code;
  codeName: string;
  title: string;
  message: string;
  reason: string;
  domain: string;
  metadata: Record<string, string>;
  retryAfterSeconds: number | null;
  fieldViolations: Violation[];
  quotaViolations: Violation[];
  requestId: string;
}

const TITLES: Partial<Record<Code, string>> = {
  [Code.ResourceExhausted]: "Slow down a little",
  [Code.Unauthenticated]: "Please sign in again",
  [Code.PermissionDenied]: "Not allowed",
  [Code.NotFound]: "Not found",
  [Code.InvalidArgument]: "Check your input",
  [Code.FailedPrecondition]: "Not possible right now",
  [Code.Unavailable]: "The tutor is unavailable for a moment",
  [Code.Unimplemented]: "Not available on this server",
  [Code.DeadlineExceeded]: "That took too long",
  [Code.Canceled]: "Cancelled",
};

/** Code.ResourceExhausted -> "RESOURCE_EXHAUSTED", as gRPC spells it. */
export function codeName(code: Code): string {
  return Code[code].replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}

export function describeError(error: unknown): Problem {
  const connectError = ConnectError.from(error);
  const info = connectError.findDetails(ErrorInfoSchema)[0];
  const retry = connectError.findDetails(RetryInfoSchema)[0];
  const badRequest = connectError.findDetails(BadRequestSchema)[0];
  const quota = connectError.findDetails(QuotaFailureSchema)[0];
  const requestInfo = connectError.findDetails(RequestInfoSchema)[0];
  let retryAfterSeconds: number | null = null;
  if (retry?.retryDelay !== undefined) {
    retryAfterSeconds = Number(retry.retryDelay.seconds) + retry.retryDelay.nanos / 1e9;
  }
  let title = TITLES[connectError.code] ?? "Something went wrong";
  if (connectError.code === Code.ResourceExhausted && (info?.reason ?? "").includes("BUDGET")) {
    title = "Token budget used up";
  }
  return {
    code: connectError.code,
    codeName: codeName(connectError.code),
    title,
    message: connectError.rawMessage,
    reason: info?.reason ?? "",
    domain: info?.domain ?? "",
    metadata: { ...(info?.metadata ?? {}) },
    retryAfterSeconds,
    fieldViolations: (badRequest?.fieldViolations ?? []).map((v) => ({
      subject: v.field,
      description: v.description,
    })),
    quotaViolations: (quota?.violations ?? []).map((v) => ({
      subject: v.subject,
      description: v.description,
    })),
    requestId: requestInfo?.requestId ?? "",
  };
}

/** One line per fact worth showing under the title. */
export function problemLines(problem: Problem): string[] {
  const lines: string[] = [];
  if (problem.message) {
    lines.push(problem.message);
  }
  // Details the message already spells out are not repeated.
  const fresh = (line: string): boolean => !problem.message.includes(line);
  for (const violation of problem.fieldViolations) {
    const line = `${violation.subject}: ${violation.description}`;
    if (fresh(line)) {
      lines.push(line);
    }
  }
  for (const violation of problem.quotaViolations) {
    const line = violation.description || violation.subject;
    if (fresh(line)) {
      lines.push(line);
    }
  }
  if (problem.retryAfterSeconds !== null) {
    lines.push(`Try again in ${Math.max(1, Math.ceil(problem.retryAfterSeconds))} s.`);
  }
  return lines;
}

export function isCancel(error: unknown): boolean {
  return ConnectError.from(error).code === Code.Canceled;
}
