/**
 * gRPC on the server's one port. Knative gives a revision a single port and
 * routes h2c to it when the port is named h2c; Prometheus and people with curl
 * still speak HTTP/1.1 to the pod. So the port's listener looks at the first
 * bytes of each connection: the HTTP/2 connection preface goes to grpc-js (as an
 * injected connection), anything else to the HTTP/1.1 server as before.
 */
import type * as GrpcJs from "@grpc/grpc-js";
import { createServer, type Server as NetServer, type Socket } from "node:net";
import type { Server as HttpServer } from "node:http";
import type { DataPlane } from "../dataplane/dataplane.js";
import type { ModelRepositoryHandlers } from "../dataplane/model-repository.js";
import { loadGrpcDefinitions } from "./definitions.js";
import { healthService } from "./health.js";
import { CallObserver, type CallObserverOptions } from "./observe.js";
import { inferenceService } from "./service.js";

export interface GrpcTransportOptions extends Omit<CallObserverOptions, "grpc"> {
  maxRequestBytes: number;
  repositoryApi: { enabled: boolean; token?: string };
  /** The metadata key naming the user (USER_HEADER), when asynchronous inference (quotas, usage) is on. */
  userHeader?: string;
}

export interface GrpcTransport {
  /** Hands a connection that opened with the HTTP/2 preface to grpc-js. */
  inject(socket: Socket): void;
  /** GOAWAY to every HTTP/2 connection: calls in progress finish, new ones go elsewhere; after graceMs they are cut. */
  drain(graceMs: number): void;
  /** Closes every gRPC connection now. */
  destroy(): void;
}

/** Records each inference message's encoded size (the input bytes metric) as it is decoded. */
function measuringDeserializers(definition: GrpcJs.ServiceDefinition, sizes: WeakMap<object, number>): GrpcJs.ServiceDefinition {
  const measured: Record<string, GrpcJs.MethodDefinition<object, unknown>> = {};
  for (const [rpc, method] of Object.entries(definition) as [string, GrpcJs.MethodDefinition<object, unknown>][]) {
    if (!rpc.endsWith("Infer")) {
      measured[rpc] = method;
      continue;
    }
    const decode = method.requestDeserialize;
    measured[rpc] = {
      ...method,
      requestDeserialize: (bytes: Buffer) => {
        const message = decode(bytes);
        sizes.set(message, bytes.byteLength);
        return message;
      },
    };
  }
  return measured as GrpcJs.ServiceDefinition;
}

/** How long a connection may stay without a call (HTTP/2) or without its first bytes (sniffing): the HTTP/1.1 headers timeout. */
export const idleTimeoutMs = (requestTimeoutMs: number) => Math.min(requestTimeoutMs, 30_000);

export async function createGrpcTransport(dataPlane: DataPlane, repository: ModelRepositoryHandlers, options: GrpcTransportOptions): Promise<GrpcTransport> {
  const definitions = await loadGrpcDefinitions();
  const { grpc } = definitions;
  const server = new grpc.Server({
    // The same body limit as REST; larger messages are refused with RESOURCE_EXHAUSTED before decoding.
    "grpc.max_receive_message_length": options.maxRequestBytes,
    "grpc.max_send_message_length": -1,
    // A connection with no call in progress is closed (GOAWAY) after the bound the HTTP/1.1 side puts on
    // headers: otherwise a peer that sends the preface, or part of it, and then nothing holds its socket
    // for ever (slowloris). Clients reconnect on their next call.
    "grpc.max_connection_idle_ms": idleTimeoutMs(options.requestTimeoutMs),
  });
  const sizes = new WeakMap<object, number>();
  const observer = new CallObserver({ ...options, grpc });
  server.addService(measuringDeserializers(definitions.inference, sizes), inferenceService(dataPlane, repository, observer, { repositoryApi: options.repositoryApi, messageSizes: sizes, userHeader: options.userHeader }));
  const health = healthService(dataPlane);
  server.addService(definitions.health, health);
  const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  return {
    inject: (socket) => injector.injectConnection(socket),
    drain(graceMs) {
      health.close();
      injector.drain(graceMs);
    },
    destroy() {
      health.close();
      injector.destroy();
      server.forceShutdown();
    },
  };
}

/** "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" opens every HTTP/2 connection; no HTTP/1.1 method starts with "PRI". */
const PREFACE_START = Buffer.from("PRI ");

/**
 * A listener that sends each connection to HTTP/1.1 or to gRPC by its first
 * bytes. The HTTP server never listens itself, so it is told 'listening' to
 * start its connection bookkeeping (request and header timeouts, idle closing).
 */
export function protocolListener(http: HttpServer, grpc: GrpcTransport, firstBytesTimeoutMs: number): NetServer {
  const listener = createServer({ noDelay: true }, (socket) => {
    // A connection that never says which protocol it speaks must not be kept (slowloris).
    socket.setTimeout(firstBytesTimeoutMs, () => socket.destroy());
    let seen: Buffer = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
      const n = Math.min(seen.length, PREFACE_START.length);
      const h2 = seen.subarray(0, n).equals(PREFACE_START.subarray(0, n));
      if (h2 && seen.length < PREFACE_START.length) return;
      socket.off("data", onData);
      socket.off("error", onError);
      socket.setTimeout(0);
      socket.pause();
      socket.unshift(seen);
      // HTTP/2 sessions read what is buffered on the socket themselves and then take over its handle;
      // the HTTP/1.1 parser reads through 'data' events, which need the stream flowing again.
      if (h2) {
        grpc.inject(socket);
      } else {
        http.emit("connection", socket);
        socket.resume();
      }
    };
    const onError = () => socket.destroy();
    socket.on("data", onData);
    socket.on("error", onError);
  });
  listener.once("listening", () => http.emit("listening"));
  return listener;
}
