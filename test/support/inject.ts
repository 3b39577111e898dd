// Puts prepared IPv4 packets on the wire from a test namespace (test/support/inject.py: a raw
// socket, any source address), for forged, replayed and garbage traffic in the end-to-end tests.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Testbed } from '../../src/testbed/netns.js';

const INJECT = join(new URL('.', import.meta.url).pathname, 'inject.py');

/** Writes `packets` to `file` for inject.py and runs it in `ns` (once each, or round and round for `seconds`). */
export async function inject(tb: Testbed, ns: string, file: string, packets: Uint8Array[], seconds?: number): Promise<{ sent: number; failed: number; seconds: number }> {
  const parts: Buffer[] = [];
  for (const p of packets) {
    const len = Buffer.alloc(2);
    len.writeUInt16BE(p.length);
    parts.push(len, Buffer.from(p));
  }
  writeFileSync(file, Buffer.concat(parts));
  const p = tb.spawn(ns, 'python3', [INJECT, file, ...(seconds ? ['--seconds', String(seconds)] : [])]);
  let out = '';
  let errText = '';
  p.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  p.stderr!.on('data', (b: Buffer) => (errText += b.toString()));
  const code = await new Promise<number | null>((r) => p.once('exit', r));
  assert.equal(code, 0, `inject.py: ${errText}`);
  return JSON.parse(out) as { sent: number; failed: number; seconds: number };
}
