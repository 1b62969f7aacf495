/** Picks the source implementation for a URI. */
import { UsageError } from "../errors.js";
import { FileSource } from "./file.js";
import { HfSource } from "./hf.js";
import { HttpSource } from "./http.js";
import { S3Source } from "./s3.js";
import type { Source } from "./types.js";

export type { PullContext, RemoteFile, ResolvedSource, Source } from "./types.js";

export function parseSource(uri: string, env: NodeJS.ProcessEnv): Source {
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(uri)?.[1]?.toLowerCase();
  switch (scheme) {
    case "http":
    case "https":
      try {
        return new HttpSource(uri);
      } catch {
        throw new UsageError(`invalid URL ${JSON.stringify(uri)}`);
      }
    case "s3":
      return new S3Source(uri);
    case "hf":
      return new HfSource(uri);
    case "file":
    case "pvc":
    case undefined:
      return new FileSource(uri, env);
    default:
      throw new UsageError(
        `unsupported source scheme ${scheme}:// (supported: http, https, s3, hf, file, pvc; for gs:// or Azure Blob use KServe's storage initializer)`,
      );
  }
}
