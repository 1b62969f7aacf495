import type { Parameters, Tensor } from "../tensor/tensor.js";

/** What every transport (V2 REST, V1, CloudEvents) translates its wire format into. */
export interface InferenceRequest {
  modelName: string;
  modelVersion?: string;
  id?: string;
  parameters?: Parameters;
  inputs: Tensor[];
  /** Requested outputs; all of the model's outputs when absent. */
  outputs?: RequestedOutput[];
}

export interface RequestedOutput {
  name: string;
  parameters?: Parameters;
}

export interface InferenceResponse {
  modelName: string;
  modelVersion: string;
  id?: string;
  parameters?: Parameters;
  outputs: Tensor[];
}
