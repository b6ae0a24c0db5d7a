// The workflows the worker registers. Each lives in a file of its own and is re-exported here;
// this file is the worker's `workflowsPath`, bundled deterministically by the SDK.
export {};
