/**
 * The only surface the data plane sees of a model: its tensor signature and
 * an infer call on typed tensors. ONNX Runtime is the first backend.
 */
import type { Logger } from "pino";
import type { ModelSettings } from "../repository/settings.js";
import type { Datatype } from "../tensor/datatypes.js";
import type { Parameters, Tensor } from "../tensor/tensor.js";

export interface TensorMetadata {
  name: string;
  datatype: Datatype;
  /** -1 marks a dynamic dimension. */
  shape: number[];
}

export interface LoadedModel {
  readonly platform: string;
  readonly inputs: readonly TensorMetadata[];
  readonly outputs: readonly TensorMetadata[];
  /** Execution providers actually in use, in priority order (e.g. ["cpu"] after a CUDA fallback). */
  readonly executionProviders: readonly string[];
  infer(inputs: readonly Tensor[], outputNames: readonly string[], parameters?: Parameters): Promise<Tensor[]>;
  unload(): Promise<void>;
}

export interface ModelLoadSpec {
  name: string;
  version: string;
  file: string;
  settings: ModelSettings;
  logger: Logger;
}

export interface ModelBackend {
  readonly platform: string;
  load(spec: ModelLoadSpec): Promise<LoadedModel>;
}
