import type { Context } from "hono";
import { checkModelName, checkModelVersion } from "../dataplane/context.js";

/** The model name and version from the URL, refused unless they are plain names (no path tricks). */
export function modelParams(c: Context): { name: string; version?: string } {
  const name = checkModelName(c.req.param("name") ?? "");
  const version = c.req.param("version");
  return { name, version: version === undefined ? undefined : checkModelVersion(version) };
}
