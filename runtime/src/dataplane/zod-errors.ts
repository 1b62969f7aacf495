import type { z } from "zod";

/** One readable line per problem, each naming the field, e.g. `inputs[0].shape[1]: expected a non-negative integer`. */
export function formatZodError(error: z.ZodError, root = ""): string {
  return error.issues
    .slice(0, 5)
    .map((issue) => {
      let path = root;
      for (const key of issue.path) {
        path += typeof key === "number" ? `[${key}]` : path ? `.${String(key)}` : String(key);
      }
      return path ? `${path}: ${issue.message}` : issue.message;
    })
    .join("; ");
}
