// Prints the REST API's OpenAPI document, built in-process from the routes (nothing is started):
// `npm run -s openapi > openapi.json`, or `npm run -s openapi -- <file>`.
import { writeFileSync } from 'node:fs';
import { OPENAPI_INFO, restApi } from '../api/app.js';
import type { AppDeps } from '../api/env.js';
import { loadConfig } from '../platform/config.js';

// Routes read only the configuration while they are built; the rest is used per request.
const deps = { config: loadConfig({ ...process.env, LOG_LEVEL: 'silent' }) } as AppDeps;
const doc = JSON.stringify(restApi(deps).getOpenAPI31Document(OPENAPI_INFO), null, 2);
const file = process.argv[2];
if (file) writeFileSync(file, `${doc}\n`);
else process.stdout.write(`${doc}\n`);
