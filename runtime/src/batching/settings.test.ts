/** The `dynamic_batching` block of model-settings.json: Triton's names, defaults and checks. */
import { describe, expect, it } from "vitest";
import { ModelSettingsSchema } from "../repository/settings.js";

const parse = (settings: unknown) => ModelSettingsSchema.safeParse(settings);
const issues = (settings: unknown) => {
  const r = parse(settings);
  return r.success ? [] : r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
};

describe("dynamic_batching settings", () => {
  it("is off unless present; {} takes Triton's defaults (no delay, no preferred sizes) and no queue limit of its own", () => {
    expect(parse({}).data?.dynamic_batching).toBeUndefined();
    expect(parse({ max_batch_size: 8, dynamic_batching: {} }).data?.dynamic_batching).toEqual({
      max_queue_delay_microseconds: 0, preferred_batch_size: [], max_queue_size: 0,
    });
  });

  it("takes Triton's spelling preferred_batch_size, or preferred_batch_sizes, sorted and without repeats", () => {
    expect(parse({ max_batch_size: 8, dynamic_batching: { preferred_batch_size: [8, 4, 4] } }).data?.dynamic_batching?.preferred_batch_size).toEqual([4, 8]);
    expect(parse({ max_batch_size: 8, dynamic_batching: { preferred_batch_sizes: [2, 6] } }).data?.dynamic_batching?.preferred_batch_size).toEqual([2, 6]);
    expect(issues({ max_batch_size: 8, dynamic_batching: { preferred_batch_size: [2], preferred_batch_sizes: [2] } })).toEqual([
      "dynamic_batching.preferred_batch_sizes: give preferred_batch_size (Triton's spelling) or preferred_batch_sizes, not both",
    ]);
  });

  it("takes the queue limit as max_queue_size or as Triton's default_queue_policy.max_queue_size", () => {
    expect(parse({ max_batch_size: 4, dynamic_batching: { max_queue_size: 16 } }).data?.dynamic_batching?.max_queue_size).toBe(16);
    expect(parse({ max_batch_size: 4, dynamic_batching: { default_queue_policy: { max_queue_size: 32 } } }).data?.dynamic_batching?.max_queue_size).toBe(32);
    expect(issues({ max_batch_size: 4, dynamic_batching: { max_queue_size: 1, default_queue_policy: { max_queue_size: 2 } } })).toHaveLength(1);
  });

  it("refuses batching without a batch dimension, preferred sizes above max_batch_size, and unknown keys", () => {
    expect(issues({ dynamic_batching: {} })).toEqual(["dynamic_batching: dynamic batching needs max_batch_size > 0 (the first dimension must be the batch dimension)"]);
    expect(issues({ max_batch_size: 4, dynamic_batching: { preferred_batch_size: [2, 8, 16] } })).toEqual(["dynamic_batching.preferred_batch_size: 8, 16 exceed max_batch_size 4"]);
    expect(issues({ max_batch_size: 4, dynamic_batching: { max_queue_delay_microseconds: -1 } })).toHaveLength(1);
    expect(issues({ max_batch_size: 4, dynamic_batching: { priority_levels: 2 } })[0]).toMatch(/Unrecognized key/);
  });

  it("has a per-model warmup switch, on by default, and the onnxruntime allow_spinning option", () => {
    expect(parse({}).data?.warmup).toBe(true);
    expect(parse({ warmup: false }).data?.warmup).toBe(false);
    expect(parse({ onnxruntime: { allow_spinning: true } }).data?.onnxruntime.allow_spinning).toBe(true);
  });
});
