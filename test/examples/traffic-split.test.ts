import { describe, expect, it } from "vitest";
import { service } from "../../knative/build/knative.js";
import { features } from "../../knative/validate/fixtures.js";
import { validateKnativeService } from "../../knative/validate/knative.js";
import { formatProblems } from "../../knative/validate/problems.js";
import { TrafficError, applyTrafficSplit, buildTrafficPatch, waitForReady, type ServiceState } from "../../examples/traffic-split.js";

describe("buildTrafficPatch", () => {
  it("builds the merge patch kn would send for a tagged CPU/GPU split", () => {
    expect(buildTrafficPatch(["inference-runtime-00001=cpu", "@latest=gpu"], ["cpu=90", "gpu=10"])).toEqual({
      spec: {
        traffic: [
          { tag: "cpu", revisionName: "inference-runtime-00001", latestRevision: false, percent: 90 },
          { tag: "gpu", latestRevision: true, percent: 10 },
        ],
      },
    });
  });

  it("accepts revision names and @latest as traffic targets, and tag-only targets at 0%", () => {
    const body = buildTrafficPatch(["inference-runtime-00002=candidate"], ["inference-runtime-00001=100"]);
    expect(body.spec.traffic).toEqual([
      { tag: "candidate", revisionName: "inference-runtime-00002", latestRevision: false, percent: 0 },
      { revisionName: "inference-runtime-00001", latestRevision: false, percent: 100 },
    ]);
    expect(buildTrafficPatch([], ["@latest=100"]).spec.traffic).toEqual([{ latestRevision: true, percent: 100 }]);
  });

  it("produces traffic the Knative webhook accepts", () => {
    const svc = service() as any;
    svc.spec.traffic = buildTrafficPatch(["inference-runtime-00001=cpu", "@latest=gpu"], ["cpu=50", "gpu=50"]).spec.traffic;
    expect(formatProblems(validateKnativeService(svc, features()))).toBe("");
  });

  it.each([
    [["a=cpu"], ["cpu=90"], /sum to 100, not 90/],
    [["a=cpu", "b=cpu"], ["cpu=100"], /tag "cpu" is given twice/],
    [["a=CPU"], ["CPU=100"], /must be a DNS label/],
    [[], ["a=101"], /integer from 0 to 100/],
    [[], ["a=50.5", "b=49.5"], /integer from 0 to 100/],
    [[], ["a=50", "a=50"], /given twice/],
    [[], ["Not_A_Revision=100"], /not a revision name/],
    [["a"], ["a=100"], /expected NAME=VALUE/],
    [["a=x"], [], /at least one --traffic/],
  ])("refuses %j %j", (tags, traffic, message) => {
    expect(() => buildTrafficPatch(tags, traffic)).toThrow(TrafficError);
    expect(() => buildTrafficPatch(tags, traffic)).toThrow(message);
  });
});

/** A fake clock and a scripted sequence of Service states. */
function scripted(states: ServiceState[]) {
  let t = 0;
  let calls = 0;
  return {
    get: async () => states[Math.min(calls++, states.length - 1)]!,
    sleep: async (ms: number) => {
      t += ms;
    },
    now: () => t,
    calls: () => calls,
  };
}

const state = (generation: number, observed: number, ready: "True" | "False" | "Unknown", reason?: string): ServiceState => ({
  metadata: { generation },
  status: { observedGeneration: observed, conditions: [{ type: "Ready", status: ready, reason, message: reason ? `${reason} happened` : undefined }] },
});

describe("waitForReady", () => {
  it("waits until the new generation is observed and Ready", async () => {
    // Ready=True of the previous generation does not count.
    const s = scripted([state(3, 2, "True"), state(3, 3, "Unknown"), state(3, 3, "True")]);
    const svc = await waitForReady(s.get, { timeoutMs: 60_000, intervalMs: 1000, sleep: s.sleep, now: s.now });
    expect(svc.status?.observedGeneration).toBe(3);
    expect(s.calls()).toBe(3);
  });

  it("fails with Knative's reason when Ready turns False", async () => {
    const s = scripted([state(3, 3, "Unknown"), state(3, 3, "False", "RevisionMissing")]);
    await expect(waitForReady(s.get, { timeoutMs: 60_000, sleep: s.sleep, now: s.now })).rejects.toThrow(/RevisionMissing: RevisionMissing happened/);
  });

  it("gives up after the timeout, saying what it saw last", async () => {
    const s = scripted([state(4, 3, "True")]);
    await expect(waitForReady(s.get, { timeoutMs: 10_000, intervalMs: 2000, sleep: s.sleep, now: s.now })).rejects.toThrow(/timed out after 10s .*generation 4 not yet observed/);
    expect(s.calls()).toBe(6);
  });

  it("applyTrafficSplit sends the patch, then waits", async () => {
    const sent: unknown[] = [];
    const s = scripted([state(2, 2, "True")]);
    const body = buildTrafficPatch([], ["@latest=100"]);
    await applyTrafficSplit({ patch: async (b) => sent.push(b), get: s.get }, body, { timeoutMs: 1000, sleep: s.sleep, now: s.now });
    expect(sent).toEqual([body]);
  });
});
