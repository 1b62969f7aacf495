#!/usr/bin/env node
// Applies the SQL migrations (runtime/migrations/) to DATABASE_URL: what the Kubernetes migration Job runs.
// The bundled entry is built by `npm run build` (run automatically by `npm install`/`npm ci`).
import "../dist/migrate.js";
