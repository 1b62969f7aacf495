/**
 * What the transports share about a request below any one of them: which protocol
 * carried it, which model it addressed, the request id rule, the model name and
 * version rules of URLs and messages, and the classifier summary the access logs
 * carry. REST, gRPC and CloudEvents all use these; none of them owns them.
 */
import { randomUUID } from "node:crypto";
import { MODEL_NAME_PATTERN, VERSION_PATTERN } from "../repository/repository.js";
import { preview } from "../tensor/datatypes.js";
import type { Tensor } from "../tensor/tensor.js";
import { invalidInput } from "./errors.js";

export type Protocol = "v2" | "v1" | "cloudevent" | "grpc";

export interface InferenceTarget {
  model: string;
  version?: string;
  protocol: Protocol;
}

/** The top class of a classifier's answer, for the access log. */
export interface Classification {
  label: string;
  confidence?: number;
}

const REQUEST_ID = /^[\w.:@/+=-]{1,128}$/;

/** The client's request id when it is a sensible one (x-request-id header or gRPC metadata), else a new one. */
export function acceptRequestId(given: string | undefined): string {
  return given && REQUEST_ID.test(given) ? given : randomUUID();
}

export function checkModelName(name: string): string {
  if (!MODEL_NAME_PATTERN.test(name)) throw invalidInput(`invalid model name ${preview(name)}`);
  return name;
}

/** A version as the registry keys it ("007" is version 7), refused unless it is a positive integer. */
export function checkModelVersion(version: string): string {
  if (!VERSION_PATTERN.test(version)) throw invalidInput(`failed to get model version from specified version string ${preview(version).replace(/^"(.*)"$/, "'$1'")}: versions are positive integers`);
  return String(Number(version));
}

/**
 * The first row's label and confidence when a response looks like a classifier's:
 * a BYTES output (the label) beside a float output of class scores.
 */
export function classificationOf(outputs: readonly Tensor[]): Classification | undefined {
  const label = outputs.find((t) => t.datatype === "BYTES" && t.data.length > 0);
  if (!label) return undefined;
  const scores = outputs.find((t) => (t.datatype === "FP32" || t.datatype === "FP64") && t.shape.length === 2);
  if (!scores) return { label: String(label.data[0]) };
  const k = scores.shape[1]!;
  const row = (scores.data as Float32Array).subarray(0, k);
  return { label: String(label.data[0]), confidence: Math.round(Math.max(...row) * 1e4) / 1e4 };
}
