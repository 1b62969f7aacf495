import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "./config.js";

describe("configuration from flags, environment and file", () => {
  it("names the key for bad gRPC and asynchronous-inference settings, nested ones included", () => {
    const message = (env: Record<string, string>) => {
      try {
        loadConfig([], env);
        return "";
      } catch (err) {
        return (err as Error).message;
      }
    };
    expect(message({ PROTOCOL: "http2" })).toBe("invalid configuration: PROTOCOL (environment): expected http or grpc");
    expect(message({ QUOTA_USERS: '{"a":{"requests":1,"foo":2}}' })).toBe('invalid configuration: QUOTA_USERS (environment): Unrecognized key: "foo"');
    expect(message({ QUOTA_USERS: "{bad" })).toMatch(/^invalid configuration: QUOTA_USERS \(environment\): expected a JSON object/);
    expect(message({ QUOTA_REQUESTS: "-1" })).toBe("invalid configuration: QUOTA_REQUESTS (environment): expected 0 or more");
    expect(message({ DATABASE_URL: "mysql://x" })).toBe("invalid configuration: DATABASE_URL (environment): expected a postgres:// or postgresql:// connection string");
    expect(loadConfig(["--protocol", "grpc"], { QUOTA_USERS: '{"alice":{"tokens":5}}' }).config).toMatchObject({ protocol: "grpc", quotaUsers: { alice: { tokens: 5 } } });
  });

  it("has defaults that serve ./models on 8080", () => {
    const { config } = loadConfig([], {});
    expect(config).toMatchObject({ port: 8080, modelRepository: "./models", strictReadiness: true, executionProviders: ["cpu"], logLevel: "info" });
  });

  it("takes PORT and MODEL_REPOSITORY from the environment, as Knative sets them", () => {
    const { config } = loadConfig([], { PORT: "9000", MODEL_REPOSITORY: "/mnt/models" });
    expect(config.port).toBe(9000);
    expect(config.modelRepository).toBe("/mnt/models");
  });

  it("accepts KServe's runtime flags in both spellings", () => {
    expect(loadConfig(["--model_name=iris", "--model_dir=/mnt/models", "--http_port", "8081"], {}).config).toMatchObject({ modelName: "iris", modelDir: "/mnt/models", port: 8081 });
    expect(loadConfig(["--model_name", "iris", "--model_dir", "/mnt/models"], {}).config.modelName).toBe("iris");
  });

  it("lets flags win over the environment, and the environment over the file", () => {
    const dir = mkdtempSync(join(tmpdir(), "config-"));
    const file = join(dir, "config.json");
    writeFileSync(file, JSON.stringify({ port: 7000, logLevel: "debug", executionProviders: ["cuda", "cpu"] }));
    const { config } = loadConfig(["--config", file, "--port", "7002"], { PORT: "7001", LOG_LEVEL: "warn" });
    expect(config).toMatchObject({ port: 7002, logLevel: "warn", executionProviders: ["cuda", "cpu"] });
    expect(loadConfig([], { CONFIG_FILE: file, EXECUTION_PROVIDERS: "cpu" }).config).toMatchObject({ port: 7000, executionProviders: ["cpu"] });
  });

  it.each([
    [[], { PORT: "eighty" }, "PORT (environment): expected a port number"],
    [["--port", "70000"], {}, "--port: "],
    [[], { STRICT_READINESS: "maybe" }, "STRICT_READINESS (environment): expected true or false"],
    [[], { EXECUTION_PROVIDERS: "tpu" }, "EXECUTION_PROVIDERS (environment): "],
    [["--log-level", "loud"], {}, "--log-level: "],
    [["--model_name", "iris"], {}, "model name and model dir go together"],
    [["--model_name", "../etc", "--model_dir", "/x"], {}, "--model_name: letters, digits"],
  ])("names the bad key: %j %j", (argv, env, message) => {
    expect(() => loadConfig(argv as string[], env as NodeJS.ProcessEnv)).toThrow(ConfigError);
    expect(() => loadConfig(argv as string[], env as NodeJS.ProcessEnv)).toThrow(message);
  });

  it("names unknown keys in the file and unknown flags", () => {
    const dir = mkdtempSync(join(tmpdir(), "config-"));
    const file = join(dir, "config.json");
    writeFileSync(file, JSON.stringify({ prot: 1 }));
    expect(() => loadConfig(["--config", file], {})).toThrow(`unknown configuration key "prot" in ${file}`);
    expect(() => loadConfig(["--prot", "1"], {})).toThrow("unknown option --prot");
    expect(() => loadConfig(["--port"], {})).toThrow("option --port needs a value");
  });
});
