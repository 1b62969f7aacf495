/**
 * The gRPC health checking protocol (grpc.health.v1.Health), for Kubernetes and
 * Knative grpc probes and grpc-health-probe. Readiness follows the data plane
 * (/v2/health/ready); see GRPC_HEALTH_SERVICES for the names it answers.
 */
import type * as GrpcJs from "@grpc/grpc-js";
import { GRPC_HEALTH_SERVICES } from "../constants.js";
import type { DataPlane } from "../dataplane/dataplane.js";
import { GRPC_CODE } from "./status.js";

type ServingStatus = "SERVING" | "NOT_SERVING" | "SERVICE_UNKNOWN";

/** How often Watch streams re-read readiness; the data plane has no change events. */
const WATCH_INTERVAL_MS = 250;

export function healthService(dataPlane: DataPlane): GrpcJs.UntypedServiceImplementation & { close(): void } {
  const readiness = new Set<string>(GRPC_HEALTH_SERVICES.readiness);
  const statusOf = (service: string): ServingStatus => {
    if (service === GRPC_HEALTH_SERVICES.liveness) return dataPlane.live() ? "SERVING" : "NOT_SERVING";
    if (readiness.has(service)) return dataPlane.ready() ? "SERVING" : "NOT_SERVING";
    return "SERVICE_UNKNOWN";
  };
  const watchers = new Set<(final?: boolean) => void>();

  const check: GrpcJs.handleUnaryCall<{ service?: string }, { status: ServingStatus }> = (call, callback) => {
    const service = call.request.service ?? "";
    const status = statusOf(service);
    if (status === "SERVICE_UNKNOWN") callback({ code: GRPC_CODE.NOT_FOUND, details: `unknown service '${service}'` });
    else callback(null, { status });
  };

  const watch: GrpcJs.handleServerStreamingCall<{ service?: string }, { status: ServingStatus }> = (call) => {
    const service = call.request.service ?? "";
    let last = statusOf(service);
    call.write({ status: last });
    const timer = setInterval(() => {
      const now = statusOf(service);
      if (now !== last) call.write({ status: (last = now) });
    }, WATCH_INTERVAL_MS);
    const stop = (final = false) => {
      clearInterval(timer);
      watchers.delete(stop);
      // On shutdown the watcher hears the last change first (NOT_SERVING as the drain began),
      // however soon after it the stream ends.
      if (final) {
        const now = statusOf(service);
        if (now !== last) call.write({ status: (last = now) });
      }
      call.end();
    };
    watchers.add(stop);
    call.on("cancelled", () => stop());
    call.on("error", () => stop());
  };

  return {
    Check: check,
    Watch: watch,
    /** Ends every Watch stream (on shutdown, so connections can close). */
    close() {
      for (const stop of [...watchers]) stop(true);
    },
  };
}
