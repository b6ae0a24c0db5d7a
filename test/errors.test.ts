import { DeadlockException } from '@mikro-orm/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asAppError } from '../platform/errors.js';
import { newTenant, startTestApi, token, type TestApi } from './support/api.js';

let api: TestApi;
let auth: string;
beforeAll(async () => {
  api = await startTestApi();
  auth = await token(newTenant());
});
afterAll(() => api.close());

describe('error envelopes and request ids', () => {
  it('gives every response a request id, echoing a caller-supplied one', async () => {
    const res = await api.call('GET', '/healthz');
    expect(res.headers.get('x-request-id')).toMatch(/^req_/);
    const echoed = await api.call('GET', '/api/v1/campaigns/nope', { auth, headers: { 'x-request-id': 'req_from-upstream-42' } });
    expect(echoed.headers.get('x-request-id')).toBe('req_from-upstream-42');
    expect(echoed.body.error.requestId).toBe('req_from-upstream-42');
  });

  it('answers a transaction PostgreSQL undid for a deadlock or a serialization failure with a CONFLICT to retry, not a 500', () => {
    for (const code of ['40P01', '40001']) {
      const undone = asAppError(new DeadlockException(Object.assign(new Error('deadlock detected'), { code })));
      expect([undone?.code, undone?.status]).toEqual(['CONFLICT', 409]);
    }
  });

  it('answers an unknown route with RESOURCE_NOT_FOUND in the envelope', async () => {
    const res = await api.call('GET', '/api/v1/nothing-here', { auth });
    expect(res.status).toBe(404);
    expect(res.body).toEqual({ error: { code: 'RESOURCE_NOT_FOUND', message: expect.any(String), requestId: res.headers.get('x-request-id') } });
  });

  it('gives GraphQL syntax, validation and variable errors VALIDATION_ERROR', async () => {
    const syntax = await api.graphql(auth, '{ customers(');
    expect(syntax.body.errors[0].extensions.code).toBe('VALIDATION_ERROR');
    const unknownField = await api.graphql(auth, '{ noSuchField }');
    expect(unknownField.body.errors[0]).toMatchObject({ message: expect.stringContaining('noSuchField'), extensions: { code: 'VALIDATION_ERROR' } });
    const badVariable = await api.graphql(auth, 'query($t: SegmentType) { segments(tenantId: "x", type: $t) { id } }', { t: 'NOPE' });
    expect(badVariable.body.errors[0].extensions.code).toBe('VALIDATION_ERROR');
    const notJson = await api.call('POST', '/graphql', { auth, body: 'query {', headers: { 'content-type': 'application/json' } });
    expect(notJson.status).toBe(400);
    expect(notJson.body.errors[0].extensions.code).toBe('VALIDATION_ERROR');
  });

  it('answers a malformed JSON body with VALIDATION_ERROR, not a 500', async () => {
    const res = await api.call('POST', '/api/v1/segments', { auth, body: '{"name": ', headers: { 'content-type': 'application/json' } });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('VALIDATION_ERROR');
  });
});
