import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { eventTypesOf, linksOf, structuralFaults, type JourneyGraph } from '../domain/journeys/graph.js';
import type { VersionStep } from '../domain/journeys/steps.js';

// Whole-graph validation of a journey's working copy, without a database: every structural fault
// is listed, each naming its field.

let n = 0;
function step(type: VersionStep['type'], config: Record<string, unknown> = {}, links: Partial<Pick<VersionStep, 'nextStepId' | 'nextStepYesId' | 'nextStepNoId'>> = {}): VersionStep {
  n += 1;
  return { id: randomUUID(), stepNumber: n, type, name: null, config, nextStepId: null, nextStepYesId: null, nextStepNoId: null, ...links };
}
const graph = (steps: VersionStep[], trigger: Partial<JourneyGraph> = {}): JourneyGraph => ({ triggerType: 'EVENT', triggerConfig: { event: 'member.joined' }, steps, ...trigger });
const fields = (g: JourneyGraph) => structuralFaults(g).map((f) => f.field);

/** TRIGGER → SEND → WAIT → CONDITION → (yes: END, no: SEND → END): the welcome journey. */
function welcome() {
  const end = step('END');
  const sms = step('SEND', { channel: 'SMS', templateId: randomUUID() }, { nextStepId: end.id });
  const opened = step('CONDITION', { criteria: { field: 'emailOptIn', op: 'eq', value: true } }, { nextStepYesId: end.id, nextStepNoId: sms.id });
  const wait = step('WAIT', { duration: 'P3D' }, { nextStepId: opened.id });
  const email = step('SEND', { channel: 'EMAIL', templateId: randomUUID() }, { nextStepId: wait.id });
  const trigger = step('TRIGGER', {}, { nextStepId: email.id });
  return { trigger, email, wait, opened, sms, end, steps: [trigger, email, wait, opened, sms, end] };
}

describe('journey graph validation', () => {
  it('accepts a valid graph, with a shared END reached from two branches', () => {
    expect(structuralFaults(graph(welcome().steps))).toEqual([]);
  });

  it('lists every fault at once, each naming its field', () => {
    const w = welcome();
    const second = step('TRIGGER', {}, { nextStepId: w.end.id });
    const orphan = step('SEND', { channel: 'EMAIL', templateId: randomUUID() }, { nextStepId: w.end.id });
    w.opened.nextStepNoId = null;
    const badWait = step('WAIT', { duration: 'three days' }, { nextStepId: w.end.id });
    w.sms.nextStepId = badWait.id;
    const steps = [w.trigger, w.email, w.wait, w.opened, w.sms, w.end, second, orphan, badWait];
    const faults = structuralFaults(graph(steps));
    const byField = new Map(faults.map((f) => [f.field, f.message]));
    expect(byField.get('steps[6]')).toMatch(/exactly one TRIGGER step; found 2/);
    expect(byField.get('steps[7]')).toMatch(/not reachable from the TRIGGER/);
    expect(byField.get('steps[3].nextStepNoId')).toMatch(/needs both branches/);
    expect(byField.get('steps[8].config.duration')).toMatch(/ISO 8601 duration/);
    // The sms step is now unreachable too (its only way in was the no branch).
    expect(byField.get('steps[4]')).toMatch(/not reachable/);
  });

  it('finds a loop without a WAIT, and lets one through a WAIT be', () => {
    const end = step('END');
    const check = step('CONDITION', { inSegment: randomUUID() }, { nextStepYesId: end.id });
    const update = step('UPDATE', { set: { lifecycleStage: 'ADVOCATE' } }, { nextStepId: check.id });
    check.nextStepNoId = update.id;
    const trigger = step('TRIGGER', {}, { nextStepId: check.id });
    const faults = structuralFaults(graph([trigger, check, update, end]));
    expect(faults).toHaveLength(1);
    expect(faults[0]).toMatchObject({ field: 'steps[1]' });
    expect(faults[0]!.message).toMatch(/steps\[1\], steps\[2\] .* form a loop without a WAIT/);

    const wait = step('WAIT', { duration: 'P1D' }, { nextStepId: check.id });
    update.nextStepId = wait.id;
    expect(structuralFaults(graph([trigger, check, update, wait, end]))).toEqual([]);
    // A WAIT until a date waits once: once the date has passed, the loop would spin without end.
    const once = step('WAIT', { until: '2030-01-01T00:00:00Z' }, { nextStepId: check.id });
    update.nextStepId = once.id;
    expect(structuralFaults(graph([trigger, check, update, once, end])).map((f) => f.message)).toEqual([
      expect.stringMatching(/steps\[1\], steps\[2\], steps\[3\] .* form a loop without a WAIT step that waits each time/),
    ]);
    const event = step('WAIT', { untilEvent: 'booking.created', timeout: 'P7D' }, { nextStepId: check.id });
    update.nextStepId = event.id;
    expect(structuralFaults(graph([trigger, check, update, event, end]))).toEqual([]);

    const self = step('SEND', { channel: 'EMAIL', templateId: randomUUID() });
    self.nextStepId = self.id;
    trigger.nextStepId = self.id;
    expect(fields(graph([trigger, self]))).toEqual(['steps[1]']);
  });

  it('checks links by type and within the journey', () => {
    const end = step('END', {}, { nextStepId: randomUUID() });
    const split = step('SPLIT', { percentYes: 50 }, { nextStepId: end.id, nextStepYesId: end.id, nextStepNoId: end.id });
    const trigger = step('TRIGGER', {}, { nextStepId: randomUUID() });
    const send = step('SEND', { channel: 'EMAIL', templateId: randomUUID() });
    trigger.nextStepId = send.id;
    send.nextStepId = split.id;
    send.nextStepYesId = end.id;
    const faults = structuralFaults(graph([trigger, send, split, end]));
    expect(faults.map((f) => f.field).sort()).toEqual(['steps[1].nextStepYesId', 'steps[2].nextStepId', 'steps[3].nextStepId']);
    expect(faults.find((f) => f.field === 'steps[3].nextStepId')!.message).toMatch(/END step has no next step/);

    const dangling = step('TRIGGER', {}, { nextStepId: randomUUID() });
    expect(structuralFaults(graph([dangling]))[0]!.message).toMatch(/is not a step of this journey/);
  });

  it('checks the trigger, each step config, and compiles CONDITION criteria', () => {
    const end = step('END');
    const cond = step('CONDITION', { criteria: { field: 'nope', op: 'eq', value: 1 } }, { nextStepYesId: end.id, nextStepNoId: end.id });
    const trigger = step('TRIGGER', {}, { nextStepId: cond.id });
    const faults = structuralFaults(graph([trigger, cond, end], { triggerType: 'SEGMENT_ENTRY', triggerConfig: { segmentId: 'x' } }));
    expect(faults.map((f) => f.field)).toEqual(['triggerConfig.segmentId', expect.stringMatching(/^steps\[1\]\.config\.criteria/)]);
    expect(fields(graph([trigger, cond, end], { triggerType: 'SOMETIMES' }))).toContain('triggerType');
    expect(fields(graph([]))).toEqual(['steps']);
  });

  it('names the links each type uses and the event types a version listens for', () => {
    expect(linksOf('CONDITION')).toEqual(['nextStepYesId', 'nextStepNoId']);
    expect(linksOf('END')).toEqual([]);
    const w = step('WAIT', { untilEvent: 'booking.created', timeout: 'P7D' });
    expect(eventTypesOf(graph([w], { triggerConfig: { event: 'member.joined', exitOn: 'member.left' } }))).toEqual(['booking.created', 'member.left']);
  });
});
