import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from '@temporalio/worker';
import { expect, it } from 'vitest';
import { historyFromFile } from './support/histories.js';
import { installTestRuntime } from './support/stack.js';

// Interpreter changes must not break running enrolments: the recorded histories of every step type
// (SEND sent and skipped, WAIT for a duration, until an event early and on timeout, at a local time,
// CONDITION both ways, SPLIT, UPDATE, END, exit by signal and by exitOn, pause/resume, a run that
// continued as new, events that came before the workflow could judge them: patched
// 'journey-early-events') are replayed against the current workflow code. A change that would take a
// recorded enrolment down another path fails here with a determinism error.
//
// Record the current interpreter's histories beside the earlier ones (never over them):
//   RECORD_HISTORIES=<label> npx vitest run test/journey-engine.test.ts
// 'journey-local-activities': histories without a label ran the steps as regular activities, those
// labelled `local` as local activities.

const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'histories', 'journey');

it('replays every recorded journey history against the current workflow code', async () => {
  installTestRuntime();
  const files = readdirSync(dir).filter((f) => f.endsWith('.json')).sort();
  expect(files.length).toBeGreaterThanOrEqual(10);
  const histories = files.map((file) => ({ workflowId: file.replace(/\.json$/, ''), history: historyFromFile(readFileSync(path.join(dir, file), 'utf8')) }));
  const failures: string[] = [];
  for await (const result of Worker.runReplayHistories({ workflowsPath: fileURLToPath(new URL('../workflows/index.ts', import.meta.url)) }, histories)) {
    if (result.error) failures.push(`${result.workflowId}: ${result.error.name}: ${result.error.message}`);
  }
  expect(failures).toEqual([]);
}, 300_000);
