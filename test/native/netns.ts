// Moved to src/testbed/netns.ts (shared by the native tests, the gateway end-to-end suite and the demo).
export * from '../../src/testbed/netns.js';
