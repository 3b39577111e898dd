// A worker thread of seal-pool.ts: seals batches of group keys to gateways (HPKE, hpke-seal.ts)
// away from the authority's main thread.
import { parentPort } from 'node:worker_threads';
import { sealBase } from './hpke-seal.js';
import type { SealBatch, SealBatchResult } from './seal-pool.js';

const port = parentPort;
if (!port) throw new Error('seal-worker.ts runs as a worker thread of seal-pool.ts');
port.on('message', (m: SealBatch) => {
  let reply: SealBatchResult;
  try {
    reply = { id: m.id, sealed: m.jobs.map((j) => sealBase(j.recipient, j.context, j.context, j.key)) };
  } catch (e) {
    reply = { id: m.id, error: e instanceof Error ? e.message : String(e) };
  }
  port.postMessage(reply);
});
