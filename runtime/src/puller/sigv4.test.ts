import { describe, expect, it } from "vitest";
import { EMPTY_SHA256, signRequest, uriEncode } from "./sigv4.js";

// The worked examples of the AWS S3 documentation ("Signature Calculations for the
// Authorization Header: Transferring Payload in a Single Chunk"), an independent check
// of the signer: s3rver, the S3-compatible server of the integration tests, does not
// verify V4 signatures.
const credentials = { accessKeyId: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY" };
const date = new Date("2013-05-24T00:00:00Z");
const region = "us-east-1";

describe("SigV4", () => {
  it("GET Object with a Range header", () => {
    const s = signRequest({
      method: "GET",
      url: new URL("https://examplebucket.s3.amazonaws.com/test.txt"),
      headers: { Range: "bytes=0-9" },
      region,
      credentials,
      date,
    });
    expect(s.canonicalRequest).toBe(
      [
        "GET",
        "/test.txt",
        "",
        "host:examplebucket.s3.amazonaws.com",
        "range:bytes=0-9",
        `x-amz-content-sha256:${EMPTY_SHA256}`,
        "x-amz-date:20130524T000000Z",
        "",
        "host;range;x-amz-content-sha256;x-amz-date",
        EMPTY_SHA256,
      ].join("\n"),
    );
    expect(s.stringToSign.split("\n").pop()).toBe("7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");
    expect(s.headers.authorization).toBe(
      "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request," +
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date," +
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
    );
  });

  it("PUT Object: path encoding and extra signed headers", () => {
    const s = signRequest({
      method: "PUT",
      url: new URL("https://examplebucket.s3.amazonaws.com/test$file.text"),
      headers: { Date: "Fri, 24 May 2013 00:00:00 GMT", "x-amz-storage-class": "REDUCED_REDUNDANCY" },
      region,
      credentials,
      date,
      payloadHash: "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072",
    });
    expect(s.canonicalRequest.split("\n")[1]).toBe("/test%24file.text");
    expect(s.signature).toBe("98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
  });

  it("GET Bucket lifecycle (a query parameter without value)", () => {
    const s = signRequest({ method: "GET", url: new URL("https://examplebucket.s3.amazonaws.com/?lifecycle"), region, credentials, date });
    expect(s.canonicalRequest.split("\n")[2]).toBe("lifecycle=");
    expect(s.signature).toBe("fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
  });

  it("GET Bucket (list objects) with a sorted query", () => {
    const s = signRequest({ method: "GET", url: new URL("https://examplebucket.s3.amazonaws.com/?prefix=J&max-keys=2"), region, credentials, date });
    expect(s.canonicalRequest.split("\n")[2]).toBe("max-keys=2&prefix=J");
    expect(s.signature).toBe("34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
  });

  it("signs the session token and a non-default port in host", () => {
    const s = signRequest({
      method: "GET",
      url: new URL("http://127.0.0.1:9000/bucket/a%20b.onnx"),
      region,
      credentials: { ...credentials, sessionToken: "session-token" },
      date,
    });
    expect(s.headers.host).toBe("127.0.0.1:9000");
    expect(s.headers["x-amz-security-token"]).toBe("session-token");
    expect(s.headers.authorization).toContain("SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token,");
    expect(s.canonicalRequest.split("\n")[1]).toBe("/bucket/a%20b.onnx");
  });

  it("encodes like RFC 3986", () => {
    expect(uriEncode("a b+c~d/e*")).toBe("a%20b%2Bc~d%2Fe%2A");
    expect(uriEncode("dir/é.onnx", false)).toBe("dir/%C3%A9.onnx");
  });
});
