import { setFlagsFromString } from 'node:v8';

// API_HEAP_GROWTH_PERCENT (platform/config.ts validates it and documents why) is applied by the
// first module the API evaluates, before loading the rest grows the heap under V8's own sizing:
// set after that, it bounded an import's peak RSS only about half as well.
const percent = Number(process.env.API_HEAP_GROWTH_PERCENT ?? 100);
if (Number.isInteger(percent) && percent > 0 && percent <= 300) setFlagsFromString(`--heap-growing-percent=${percent}`);
