import type { Context } from "hono";
import { invalidInput } from "../dataplane/errors.js";
import { preview } from "../tensor/datatypes.js";
import { MODEL_NAME_PATTERN, VERSION_PATTERN } from "../repository/repository.js";

export function checkModelName(name: string): string {
  if (!MODEL_NAME_PATTERN.test(name)) throw invalidInput(`invalid model name ${preview(name)}`);
  return name;
}

/** A version as the registry keys it ("007" is version 7), refused unless it is a positive integer. */
export function checkModelVersion(version: string): string {
  if (!VERSION_PATTERN.test(version)) throw invalidInput(`invalid model version ${preview(version)}; versions are positive integers`);
  return String(Number(version));
}

/** The model name and version from the URL, refused unless they are plain names (no path tricks). */
export function modelParams(c: Context): { name: string; version?: string } {
  const name = checkModelName(c.req.param("name") ?? "");
  const version = c.req.param("version");
  return { name, version: version === undefined ? undefined : checkModelVersion(version) };
}
