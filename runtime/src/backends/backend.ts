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

/** A graph output this runtime cannot return, e.g. `{ name: "tokens", type: "seq(tensor(int64))" }`. */
export interface UnservedOutput {
  name: string;
  type: string;
}

export interface InferOptions {
  /**
   * The caller no longer needs the input arrays: they may be handed to another thread
   * without a copy (and are unusable afterwards).
   */
  transfer?: boolean;
}

export interface LoadedModel {
  readonly platform: string;
  readonly inputs: readonly TensorMetadata[];
  readonly outputs: readonly TensorMetadata[];
  /** Execution providers actually in use, in priority order (e.g. ["cpu"] after a CUDA fallback). */
  readonly executionProviders: readonly string[];
  /** Copies of the model that run side by side (worker-thread instances); 1 when absent. */
  readonly instanceCount?: number;
  /** Instances able to run now (the others are starting again after a failure). */
  liveInstances?(): number;
  /**
   * Class labels the graph itself declares, index-aligned with its class dimension (a classifier's
   * ZipMap, served as a probability tensor): the default for the settings' `labels`.
   */
  readonly labels?: readonly string[];
  /** Graph outputs that cannot be served (not tensors), with their ONNX types: reported, never silently dropped. */
  readonly unservedOutputs?: readonly UnservedOutput[];
  infer(inputs: readonly Tensor[], outputNames: readonly string[], parameters?: Parameters, options?: InferOptions): Promise<Tensor[]>;
  unload(): Promise<void>;
}

export interface ModelLoadSpec {
  name: string;
  version: string;
  file: string;
  settings: ModelSettings;
  logger: Logger;
  /** Instances that start after the first (or again after a failure) run the warm-up inference before serving. */
  warmup?: boolean;
}

export interface ModelBackend {
  readonly platform: string;
  load(spec: ModelLoadSpec): Promise<LoadedModel>;
}
