// The contract users generate clients from, checked as they would use it: the OpenAPI document
// (built in-process from the routes, nothing started) → TypeScript types by openapi-typescript →
// test/contract/client.ts, an openapi-fetch program, compiled with tsc. Run by .ci/run.
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import openapiTS, { astToString } from 'openapi-typescript';
import { OPENAPI_INFO, restApi } from '../api/app.js';
import type { AppDeps } from '../api/env.js';
import { loadConfig } from '../platform/config.js';

const root = path.resolve(import.meta.dirname, '..');
const out = path.join(root, 'test/contract/generated');
// Routes read only the configuration while they are built; the rest is used per request.
const deps = { config: loadConfig({ ...process.env, LOG_LEVEL: 'silent' }) } as AppDeps;
const doc = restApi(deps).getOpenAPI31Document(OPENAPI_INFO);

mkdirSync(out, { recursive: true });
writeFileSync(path.join(out, 'openapi.json'), JSON.stringify(doc, null, 2));
const ast = await openapiTS(JSON.stringify(doc));
writeFileSync(path.join(out, 'api.d.ts'), astToString(ast));
execFileSync(path.join(root, 'node_modules/.bin/tsc'), ['-p', path.join(root, 'test/contract/tsconfig.json')], { stdio: 'inherit' });
console.log(`contract: ${Object.keys(doc.paths ?? {}).length} paths generated and compiled against test/contract/client.ts`);
