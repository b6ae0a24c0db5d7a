import { startSocialFakes } from '../test/support/social/fake-platforms.js';

// `npm run social-fakes`: the five fake social platforms of the tests on one local port, so the
// whole connect-and-publish flow runs without platform accounts. Prints the variables that point
// the API and the worker at it; the fake approves every authorisation as its one user.

const port = Number(process.env.SOCIAL_FAKES_PORT ?? 4780);
const fakes = await startSocialFakes(port);
console.log(`Fake social platforms on ${fakes.url} (Ctrl-C stops them). Start the API and the worker with:\n`);
for (const [name, value] of Object.entries(fakes.env)) console.log(`export ${name}=${value}`);
const stop = () => void fakes.close().then(() => process.exit(0));
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
