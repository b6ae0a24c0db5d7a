import { existsSync } from 'node:fs';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newTenant, startTestApi, token, type TestApi } from './support/api.js';

// The explorer and the docs in a real browser (Debian's `chromium`, which .ci/run installs), with
// no internet: every request a page makes must go to this machine's API.
const chromium = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => p && existsSync(p));
if (!chromium) {
  const message = 'Chromium not found (apt-get install -y chromium, or set CHROMIUM_PATH): the browser tests of /graphql and /docs are SKIPPED';
  if (process.env.CI) throw new Error(`${message}; CI must run them`);
  console.warn(`\n${'!'.repeat(message.length)}\n${message}\n${'!'.repeat(message.length)}\n`);
}

let api: TestApi;
let browser: Browser;
beforeAll(async () => {
  if (!chromium) return;
  api = await startTestApi();
  browser = await puppeteer.launch({ executablePath: chromium, headless: true, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
});
afterAll(async () => {
  await browser?.close();
  await api?.close();
});

/** Opens `path` in a fresh page, recording every URL the page requests. */
async function open(path: string): Promise<{ page: Page; requested: string[] }> {
  const page = await browser.newPage();
  page.setDefaultTimeout(60_000); // a loaded CI machine renders slowly; a broken page still fails
  const requested: string[] = [];
  page.on('request', (req) => void requested.push(req.url()));
  const errors: string[] = [];
  page.on('pageerror', (err) => void errors.push(String(err)));
  await page.goto(api.url + path, { waitUntil: 'networkidle0' });
  expect(errors, 'no script errors').toEqual([]);
  return { page, requested };
}

/** Only this machine: data: and blob: URLs never leave the page. */
function offMachine(requested: string[]): string[] {
  return requested.filter((url) => !url.startsWith(`${api.url}/`) && !url.startsWith('data:') && !url.startsWith('blob:'));
}

/** Replaces a GraphiQL (CodeMirror) editor's text by typing into it, as a user would. */
async function typeInto(page: Page, editor: string, text: string) {
  await page.click(`${editor} .CodeMirror`);
  const selectAll = process.platform === 'darwin' ? 'Meta' : 'Control';
  await page.keyboard.down(selectAll);
  await page.keyboard.press('a');
  await page.keyboard.up(selectAll);
  await page.keyboard.press('Backspace');
  await page.keyboard.type(text);
  await page.keyboard.press('Escape'); // closes an open autocomplete list
  return page.$eval(`${editor} .CodeMirror`, (el) => (el as unknown as { CodeMirror: { getValue(): string } }).CodeMirror.getValue());
}

describe.skipIf(!chromium)('in a real browser, offline', { timeout: 180_000 }, () => {
  it('runs a query through the GraphQL explorer with a token header', async () => {
    const tenant = newTenant();
    const auth = await token(tenant);
    const created = await api.call('POST', '/api/v1/customers', { auth, body: { email: 'explorer@example.com', firstName: 'Ximena' } });
    expect(created.status).toBe(201);

    // A link can open the explorer on a query (npm run demo prints one).
    const linked = '{ segments(tenantId: "x") { name } }';
    const { page, requested } = await open(`/graphql?query=${encodeURIComponent(linked)}`);
    await page.waitForSelector('.graphiql-query-editor .CodeMirror');
    expect(await page.$eval('.graphiql-query-editor .CodeMirror', (el) => (el as unknown as { CodeMirror: { getValue(): string } }).CodeMirror.getValue())).toBe(linked);

    const query = `{ customers(tenantId: "${tenant}") { totalCount edges { node { firstName email } } } }`;
    expect(await typeInto(page, '.graphiql-query-editor', query)).toBe(query);

    const [headersTab] = await page.$$('xpath/.//button[normalize-space(.)="Headers"]');
    expect(headersTab, 'the Headers tab').toBeDefined();
    await headersTab!.click();
    const headers = `{"Authorization": "Bearer ${auth}"}`;
    expect(await typeInto(page, 'section.graphiql-editor-tool[aria-label="Headers"] .graphiql-editor:not(.hidden)', headers)).toBe(headers);

    await page.click('.graphiql-execute-button');
    // The result pane fills in once the API has answered.
    await page.waitForFunction(`document.querySelector('.result-window .CodeMirror')?.CodeMirror?.getValue().includes('"data"')`);
    const result = JSON.parse(
      await page.$eval('.result-window .CodeMirror', (el) => (el as unknown as { CodeMirror: { getValue(): string } }).CodeMirror.getValue()),
    );
    expect(result).toEqual({ data: { customers: { totalCount: 1, edges: [{ node: { firstName: 'Ximena', email: 'explorer@example.com' } }] } } });
    expect(requested).toContain(`${api.url}/graphql`);
    expect(offMachine(requested)).toEqual([]);
    await page.close();
  });

  it('renders every REST operation in the API docs', async () => {
    const doc = (await api.call('GET', '/api/v1/openapi.json')).body;
    const operations = Object.values(doc.paths as Record<string, Record<string, unknown>>).flatMap((item) => Object.keys(item)).length;

    const { page, requested } = await open('/docs');
    await page.waitForSelector('.opblock');
    const rendered = await page.$$eval('.opblock-summary-path', (els) => els.map((el) => el.getAttribute('data-path') ?? el.textContent));
    expect(rendered).toHaveLength(operations);
    expect(rendered).toContain('/customers/{id}');
    expect(await page.$eval('.info .title', (el) => el.textContent)).toContain('CRM & Marketing Platform API');
    expect(requested).toEqual(expect.arrayContaining([`${api.url}/docs/assets/swagger-ui-bundle.js`, `${api.url}/api/v1/openapi.json`]));
    expect(offMachine(requested)).toEqual([]);
    await page.close();
  });
});
