/** Triton's model configuration as a load's `config`: what maps onto the settings, what is refused by name, and the inverse. */
import { describe, expect, it } from "vitest";
import { availableCpus } from "../backends/cpu.js";
import { tritonModelConfig } from "../dataplane/model-config.js";
import { ModelSettingsSchema } from "./settings.js";
import { isTritonConfig, TritonConfigError, tritonConfigToSettings } from "./triton-config.js";

const io = (prefix: string, dims: (number | string)[] = [16]) => [0, 1].map((i) => ({ name: `${prefix}${i}`, data_type: "TYPE_INT32", dims }));
const refusal = (config: object) => {
  try {
    tritonConfigToSettings(config, "simple");
  } catch (err) {
    expect(err).toBeInstanceOf(TritonConfigError);
    return (err as Error).message;
  }
  throw new Error("the configuration was accepted");
};

describe("Triton model configuration → model settings", () => {
  it("maps max_batch_size, dims (batch dimension prepended), dynamic_batching, instance_group and parameters", () => {
    const settings = tritonConfigToSettings(
      {
        name: "simple", platform: "onnxruntime_onnx", backend: "onnxruntime", max_batch_size: 8,
        input: io("INPUT"), output: io("OUTPUT"),
        dynamic_batching: { preferred_batch_size: [4, 2], max_queue_delay_microseconds: 500, default_queue_policy: { max_queue_size: 10 } },
        instance_group: [{ kind: "KIND_CPU", count: 3 }],
        version_policy: { specific: { versions: [1, "2"] } },
        default_model_filename: "graph.onnx",
        optimization: { graph: { level: 1 } },
        parameters: { owner: { string_value: "team-a" }, intra_op_thread_count: { string_value: "1" }, execution_mode: { string_value: "1" }, enable_mem_arena: { string_value: "false" } },
      },
      "simple",
    );
    expect(settings).toMatchObject({
      max_batch_size: 8,
      inputs: [{ name: "INPUT0", datatype: "INT32", shape: [-1, 16] }, { name: "INPUT1", datatype: "INT32", shape: [-1, 16] }],
      outputs: [{ name: "OUTPUT0", datatype: "INT32", shape: [-1, 16] }, { name: "OUTPUT1", datatype: "INT32", shape: [-1, 16] }],
      dynamic_batching: { preferred_batch_size: [2, 4], max_queue_delay_microseconds: 500, max_queue_size: 10 },
      instance_group: [{ kind: "KIND_CPU", count: 3 }],
      execution_providers: ["cpu"],
      version_policy: { specific: { versions: ["1", "2"] } },
      default_model_filename: "graph.onnx",
      onnxruntime: { graph_optimization_level: "extended", intra_op_num_threads: 1, execution_mode: "parallel", enable_cpu_mem_arena: false },
      parameters: { owner: "team-a" },
    });
  });

  it("keeps dims as they are without batching, and reads protobuf's own JSON (camelCase names, int64 strings, enum numbers)", () => {
    const settings = tritonConfigToSettings({ maxBatchSize: 0, input: [{ name: "INPUT0", dataType: 8, dims: ["-1", "16"] }], instanceGroup: [{ kind: "kind_gpu", count: 1, gpus: [0] }] }, "simple");
    expect(settings).toMatchObject({ max_batch_size: 0, inputs: [{ name: "INPUT0", datatype: "INT32", shape: [-1, 16] }], execution_providers: ["cuda"] });
  });

  it("refuses, naming the key, what this server would not honour", () => {
    expect(refusal({ sequence_batching: {} })).toMatch(/^sequence_batching: not supported by this server: sequence batching/);
    expect(refusal({ ensemble_scheduling: { step: [] } })).toMatch(/^ensemble_scheduling: not supported/);
    expect(refusal({ platform: "tensorflow_savedmodel" })).toMatch(/^platform: not supported by this server: this server runs ONNX models/);
    expect(refusal({ backend: "python" })).toMatch(/^backend: not supported/);
    expect(refusal({ name: "other" })).toBe("name: 'other' does not match the model being loaded, 'simple'");
    expect(refusal({ input: [{ name: "INPUT0", format: "FORMAT_NHWC" }] })).toMatch(/^input\[0\]\.format: not supported/);
    expect(refusal({ output: [{ name: "OUTPUT0", label_filename: "labels.txt" }] })).toMatch(/^output\[0\]\.label_filename: not supported/);
    expect(refusal({ model_warmup: [{ name: "w" }] })).toMatch(/^model_warmup: not supported/);
    expect(refusal({ instance_group: [{ kind: "KIND_CPU" }, { kind: "KIND_GPU" }] })).toMatch(/^instance_group: groups of different kinds/);
    expect(refusal({ instance_group: [{ kind: "KIND_MODEL" }] })).toMatch(/^instance_group\.kind: KIND_MODEL/);
    expect(refusal({ parameters: { gpu_mem_limit: { string_value: "1" } } })).toMatch(/^parameters\.gpu_mem_limit: not supported/);
    expect(refusal({ dynamic_batching: { priority_levels: 2 } })).toMatch(/^dynamic_batching\.priority_levels: not supported/);
    expect(refusal({ response_cache: { enable: true } })).toMatch(/^response_cache: not supported/);
    expect(refusal({ no_such_field: 1 })).toMatch(/no_such_field/);
    expect(refusal({ dynamic_batching: {} })).toMatch(/^dynamic_batching: dynamic batching needs max_batch_size > 0/);
  });

  it("accepts the fields Triton prints at their default values", () => {
    expect(() =>
      tritonConfigToSettings({ runtime: "", batch_input: [], batch_output: [], cc_model_filenames: {}, metric_tags: {}, model_warmup: [], response_cache: { enable: false }, model_transaction_policy: { decoupled: false } }, "simple"),
    ).not.toThrow();
  });

  it("tells Triton's configuration from model-settings JSON, and refuses a mix", () => {
    expect(isTritonConfig({ max_batch_size: 2 })).toBe(true);
    expect(isTritonConfig({ max_batch_size: 2, labels: ["a"] })).toBe(false);
    expect(isTritonConfig({ parameters: { owner: "me" } })).toBe(false);
    expect(() => isTritonConfig({ name: "simple", inputs: [] })).toThrow(/mixes model-settings\.json keys \(inputs\) with Triton model configuration keys \(name\)/);
  });

  it("bounds thread counts by the pod's CPUs, naming Triton's key", () => {
    const cpus = availableCpus();
    expect(refusal({ parameters: { intra_op_thread_count: { string_value: "100000" } } })).toBe(
      `parameters.intra_op_thread_count: 100000 threads exceeds the bound of ${cpus} (the pod has ${cpus} CPU${cpus === 1 ? "" : "s"})`,
    );
  });
});

describe("loaded model → Triton model configuration → model settings", () => {
  it("is the inverse where both apply", () => {
    const settings = ModelSettingsSchema.parse({
      max_batch_size: 8, dynamic_batching: { max_queue_delay_microseconds: 100, preferred_batch_size: [4] }, instance_count: 2,
      default_model_filename: "graph.onnx", parameters: { owner: "a" }, onnxruntime: { intra_op_num_threads: 1, graph_optimization_level: "basic" },
    });
    const model = { inputs: [{ name: "X", datatype: "FP32" as const, shape: [-1, 3] }], outputs: [{ name: "Y", datatype: "BYTES" as const, shape: [-1] }], executionProviders: ["cpu"], instanceCount: 2 };
    const config = tritonModelConfig("m", model, settings);
    expect(config).toMatchObject({
      name: "m", platform: "onnxruntime_onnx", backend: "onnxruntime", max_batch_size: 8,
      input: [{ name: "X", data_type: "TYPE_FP32", dims: [3] }], output: [{ name: "Y", data_type: "TYPE_STRING", dims: [] }],
      instance_group: [{ kind: "KIND_CPU", count: 2 }], default_model_filename: "graph.onnx",
      dynamic_batching: { preferred_batch_size: [4], max_queue_delay_microseconds: 100 },
      optimization: { graph: { level: -1 } },
      parameters: { owner: { string_value: "a" }, intra_op_thread_count: { string_value: "1" } },
    });
    const back = tritonConfigToSettings(JSON.parse(JSON.stringify(config)), "m");
    expect(back).toMatchObject({
      max_batch_size: 8, default_model_filename: "graph.onnx", execution_providers: ["cpu"], instance_group: [{ count: 2 }],
      dynamic_batching: settings.dynamic_batching, inputs: [{ name: "X", datatype: "FP32", shape: [-1, 3] }],
      onnxruntime: { intra_op_num_threads: 1, graph_optimization_level: "basic" }, parameters: { owner: "a" },
    });
  });
});
