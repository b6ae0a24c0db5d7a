import { setFlagsFromString } from 'node:v8';

// The API's V8 heap settings, applied by the first module it evaluates, before loading the rest
// grows the heap under V8's own sizing.

// API_HEAP_GROWTH_PERCENT (platform/config.ts validates it and documents why): set after loading,
// it bounded an import's peak RSS only about half as well.
const percent = Number(process.env.API_HEAP_GROWTH_PERCENT ?? 200);
if (Number.isInteger(percent) && percent > 0 && percent <= 300) setFlagsFromString(`--heap-growing-percent=${percent}`);

// No allocation-site pretenuring. Under a steady stream of requests V8 saw the objects of some
// allocation sites outlive a scavenge (the 50-200 requests in flight hold theirs), and allocated
// them straight into the old generation from then on, where they died a few milliseconds later:
// about 20 KB a list request, a full mark-compact every second, and the requests in flight waited
// out each one (REST list p99 3.4x its median at 50 connections, against bare Hono's 1.5x).
// Without it: no promotion to speak of, a mark-compact every three seconds, p99 2.2x the median.
setFlagsFromString('--no-allocation-site-pretenuring');
