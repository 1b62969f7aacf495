#!/usr/bin/env node
// The bundled entry is built by `npm run build` (run automatically by `npm install`/`npm ci`).
import "../dist/model-puller.js";
