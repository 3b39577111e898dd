// Puts prepared IPv4 packets on the wire from a test namespace (test/support/inject.py: a raw
// socket, any source address), for forged, replayed and garbage traffic in the end-to-end tests.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Testbed } from '../../src/testbed/netns.js';
import type { Figure2 } from '../../src/demo/figure2.js';

const INJECT = join(new URL('.', import.meta.url).pathname, 'inject.py');

/** Writes `packets` to `file` for inject.py and runs it in `ns` (once each, or round and round for `seconds`). */
export async function inject(
  tb: Testbed,
  ns: string,
  file: string,
  packets: Uint8Array[],
  seconds?: number,
): Promise<{ sent: number; failed: number; seconds: number }> {
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

/**
 * The attacker's namespace X on Figure 2's WAN: it hangs off the router R (10.200.8.0/24), which
 * forwards whatever source address X uses (no reverse-path filtering). Returns its name.
 */
export function wanAttacker(f: Figure2): string {
  const X = f.tb.ns('X');
  f.tb.link(X, 'eth0', '10.200.8.2/24', f.ns.R, 'x', '10.200.8.1/24');
  f.tb.ip(X, 'route', 'add', 'default', 'via', '10.200.8.1');
  f.tb.sysctl(f.ns.R, 'net.ipv4.conf.all.rp_filter', '0');
  f.tb.sysctl(f.ns.R, 'net.ipv4.conf.x.rp_filter', '0');
  return X;
}
