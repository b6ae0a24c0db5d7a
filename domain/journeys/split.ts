// A SPLIT step's draw, stable per enrolment: the same enrolment reaching the same step always goes
// the same way (a replay, a retry, a loop back), and enrolments spread evenly over 0..99. Pure and
// dependency-free: the workflow computes it (deterministic, no I/O).

/** FNV-1a (32-bit) of `<enrollmentId>:<stepId>`, folded into a bucket 0..99. */
export function splitBucket(enrollmentId: string, stepId: string): number {
  const text = `${enrollmentId}:${stepId}`;
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  // A final avalanche (murmur3's fmix32), so ids that differ in one character still spread.
  hash ^= hash >>> 16;
  hash = Math.imul(hash, 0x85ebca6b) >>> 0;
  hash ^= hash >>> 13;
  hash = Math.imul(hash, 0xc2b2ae35) >>> 0;
  hash ^= hash >>> 16;
  return (hash >>> 0) % 100;
}

/** YES when the enrolment's bucket falls below `percentYes`. */
export const splitYes = (enrollmentId: string, stepId: string, percentYes: number) => splitBucket(enrollmentId, stepId) < percentYes;
