import pkg from "../../../package.json" with { type: "json" };

/** The package version, for --version and the marker. */
export const VERSION: string = (pkg as { version: string }).version;
