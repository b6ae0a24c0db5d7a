import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';

// Every answer of an /api/v1 operation the tests receive is checked against the OpenAPI document:
// its status must be one the operation documents, and its JSON body must match that response's
// schema. A test that gets an undocumented answer fails, so the document cannot drift from the API.

export interface Doc { paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, unknown> }> }>> }

export function responseChecker(doc: Doc) {
  const ajv = new Ajv2020({ strict: false, allErrors: true, validateSchema: false });
  addFormats.default(ajv);
  ajv.addSchema(doc as object, 'openapi');
  const pointer = (...parts: string[]) => parts.map((p) => p.replaceAll('~', '~0').replaceAll('/', '~1')).join('/');
  // Literal paths win over templated ones (`/customers/merge` over `/customers/{id}`).
  const routes = Object.keys(doc.paths)
    .map((template) => ({ template, pattern: new RegExp(`^${template.replace(/\{[^}]+\}/g, '[^/]+')}$`), params: template.split('{').length }))
    .sort((a, b) => a.params - b.params);
  const compiled = new Map<string, ValidateFunction>();

  /** What is wrong with this answer, or undefined when the document describes it. */
  return (method: string, path: string, status: number, body: unknown): string | undefined => {
    const m = method.toLowerCase();
    const route = routes.find((r) => r.pattern.test(path) && doc.paths[r.template]![m]);
    if (!route) return undefined; // no such operation: the 404 of an unknown route
    const response = doc.paths[route.template]![m]!.responses[String(status)];
    const where = `${method} ${route.template} → ${status}`;
    if (!response) return `${where}: status not documented`;
    if (!response.content?.['application/json']) return undefined;
    const key = `${route.template} ${m} ${status}`;
    let validate = compiled.get(key);
    if (!validate) {
      validate = ajv.compile({ $ref: `openapi#/${pointer('paths', route.template, m, 'responses', String(status), 'content', 'application/json', 'schema')}` });
      compiled.set(key, validate);
    }
    if (validate(body)) return undefined;
    return `${where}: ${ajv.errorsText(validate.errors, { dataVar: 'body' })}`;
  };
}
