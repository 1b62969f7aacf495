/**
 * Data plane errors as gRPC statuses: the code that matches the HTTP status the
 * same error has over REST, and the same message.
 */
import type { ErrorStatus } from "../dataplane/errors.js";

/** Numeric gRPC status codes (grpc-js' `status` enum), so this module needs no grpc-js at load time. */
export const GRPC_CODE = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const;

const BY_HTTP_STATUS: Record<ErrorStatus, number> = {
  400: GRPC_CODE.INVALID_ARGUMENT,
  401: GRPC_CODE.UNAUTHENTICATED,
  403: GRPC_CODE.PERMISSION_DENIED,
  404: GRPC_CODE.NOT_FOUND,
  413: GRPC_CODE.RESOURCE_EXHAUSTED,
  415: GRPC_CODE.INVALID_ARGUMENT,
  429: GRPC_CODE.RESOURCE_EXHAUSTED,
  500: GRPC_CODE.INTERNAL,
  501: GRPC_CODE.UNIMPLEMENTED,
  503: GRPC_CODE.UNAVAILABLE,
  504: GRPC_CODE.DEADLINE_EXCEEDED,
};

export function grpcCodeFor(status: ErrorStatus): number {
  return BY_HTTP_STATUS[status];
}
