// `npm run token -- --tenant <id> --scopes <a,b,...> [--sub <user>] [--name <display name>] [--expires 12h]`
// Prints a development JWT signed with the API's secret (JWT_SECRET, or the one in $CRM_DATA_DIR).
import { parseArgs } from 'node:util';
import { signDevToken, SCOPES } from '../platform/auth.js';
import { loadConfig } from '../platform/config.js';
import { jwtSecret } from '../platform/jwt-secret.js';

const { values } = parseArgs({
  options: {
    tenant: { type: 'string' },
    scopes: { type: 'string', default: 'crm:read' },
    sub: { type: 'string', default: 'dev-user' },
    name: { type: 'string' },
    expires: { type: 'string', default: '12h' },
  },
});

if (!values.tenant) {
  process.stderr.write('usage: npm run token -- --tenant <id> --scopes <a,b,...> [--sub <user>] [--name <name>] [--expires 12h]\n');
  process.exit(2);
}
const scopes = values.scopes.split(',').map((s) => s.trim()).filter(Boolean);
const unknown = scopes.filter((s) => !(SCOPES as readonly string[]).includes(s));
if (unknown.length) {
  process.stderr.write(`unknown scope(s): ${unknown.join(', ')}; known: ${SCOPES.join(', ')}\n`);
  process.exit(2);
}
const secret = jwtSecret(loadConfig());
if (!secret) {
  process.stderr.write('JWT_JWKS_URL is set: tokens come from your identity provider, not from this command\n');
  process.exit(2);
}
const token = await signDevToken(secret, { tenantId: values.tenant, scopes, sub: values.sub, name: values.name }, values.expires);
process.stdout.write(`${token}\n`);
