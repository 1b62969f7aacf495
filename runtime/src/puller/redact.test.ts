import { describe, expect, it } from "vitest";
import { REDACTED, SecretRegistry, redactText, redactUrl, registerEnvSecrets, secretsInUrl } from "./redact.js";

describe("redaction", () => {
  it("removes user-info and signed query values from URLs", () => {
    expect(redactUrl("https://user:hunter22@example.com/m.onnx")).toBe("https://***@example.com/m.onnx");
    expect(redactUrl("https://ghp_abcdef123456@example.com/m.onnx")).toBe("https://***@example.com/m.onnx");
    const presigned =
      "https://bucket.s3.amazonaws.com/model.onnx?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA%2F20261121&X-Amz-Signature=deadbeefcafe&version=3";
    const r = redactUrl(presigned);
    expect(r).not.toContain("deadbeefcafe");
    expect(r).not.toContain("AKIA");
    expect(r).toContain("version=3");
    expect(r).toContain(`X-Amz-Signature=${REDACTED}`);
    expect(redactUrl("https://acct.blob.core.windows.net/c/m.onnx?sv=2022&sig=abc%2Bdef&se=2026")).not.toContain("abc");
    expect(redactUrl("https://cdn.example.com/m?token=t0k3n&access_token=zzzz")).not.toMatch(/t0k3n|zzzz/);
    expect(redactUrl("s3://bucket/key")).toBe("s3://bucket/key");
    expect(redactUrl("not a url")).toBe("not a url");
  });

  it("finds secrets in URLs and scrubs them from any text, in raw, URL-encoded and JSON forms", () => {
    expect(secretsInUrl("https://u:p%40ss99@h/x?sig=s1g-value")).toEqual(["p@ss99", "s1g-value"]);
    const reg = new SecretRegistry();
    reg.add("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
    reg.add("ab"); // too short to scrub by value
    const text = `secret=wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY enc=${encodeURIComponent("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")} ab`;
    const out = reg.scrub(text);
    expect(out).not.toContain("wJalrXUtnFEMI");
    expect(out).toContain("ab");
  });

  it("registers credentials from the environment", () => {
    const reg = new SecretRegistry();
    registerEnvSecrets(
      {
        AWS_SECRET_ACCESS_KEY: "aws-secret-value",
        HF_TOKEN: "hf_tokenvalue",
        PULLER_HTTP_AUTHORIZATION: "Bearer bearer-token-xyz",
        STORAGE_URI: "https://u:urlpassword@h/x",
      },
      reg,
    );
    const out = redactText("aws-secret-value hf_tokenvalue bearer-token-xyz urlpassword plain", reg);
    expect(out).toBe(`${REDACTED} ${REDACTED} ${REDACTED} ${REDACTED} plain`);
  });

  it("redacts URLs inside free text", () => {
    expect(redactText("GET https://x:y1234@h/p?X-Amz-Signature=abc failed", new SecretRegistry())).toBe(
      `GET https://***@h/p?X-Amz-Signature=${REDACTED} failed`,
    );
  });
});
