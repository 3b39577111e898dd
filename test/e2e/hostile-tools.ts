// What the hostile end-to-end tests (hostile.test.ts over IPv4, hostile-ipv6.test.ts) forge: key-search
// replies raced against a genuine search, and ESP with made-up content; and the two attacks they both
// run, each family putting its own packets on the wire: the race, and a flood of garbage.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { Figure2 } from '../../src/demo/figure2.js';
import type { SearchEntry, SearchMessage } from '../../src/core/packet/search-message.js';
import { startCapture, stopCapture } from '../support/capture.js';
import { delta, drops, total } from '../support/drops.js';
import { inject } from '../support/inject.js';

/** Polls `get` every 100 ms until it gives a value (not undefined or false). */
export async function until<T>(get: () => T | undefined | false, ms: number, what: string): Promise<T> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const v = get();
    if (v !== undefined && v !== false) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

/**
 * Five forged replies to the destination search `m` (whose last entry is the searching gateway's):
 * a peer's claim with made-up proofs, another gateway's, an unknown gateway's, the searcher's own
 * entry tampered with, and a transaction nobody started.
 */
export function forgedReplies(m: SearchMessage, peerAddress: string): SearchMessage[] {
  const mine = m.entries.at(-1);
  if (!mine) throw new Error('the search carries no entry');
  const forged = (gateway: string): SearchEntry => ({
    side: 'dst',
    gateway,
    address: peerAddress,
    vpns: mine.vpns.map((v) => ({ ...v, proof: randomBytes(16) })),
  });
  return [
    { ...m, entries: [...m.entries, forged('G1')] },
    { ...m, entries: [...m.entries, forged('G3')] },
    { ...m, entries: [...m.entries, forged('MALLORY')] },
    { ...m, entries: [{ ...mine, vpns: [] }, forged('G1')] },
    { ...m, txid: randomBytes(8), entries: [...m.entries, forged('G1')] },
  ];
}

/** A UDP header 4500 -> 4500 in front of `body` (ESP in UDP; the checksum left 0). */
export function inUdp(body: Uint8Array): Buffer {
  const u = Buffer.alloc(8 + body.length);
  u.writeUInt16BE(4500, 0);
  u.writeUInt16BE(4500, 2);
  u.writeUInt16BE(u.length, 4);
  Buffer.from(body).copy(u, 8);
  return u;
}

/** Well-formed ESP in kasane's framing (RFC 4303 with the 64-bit sequence number as the IV), made-up content. */
export function espLike(spi: number, seq: bigint, ctLength: number): Buffer {
  const b = Buffer.alloc(16 + ctLength + 16);
  b.writeUInt32BE(spi, 0);
  b.writeUInt32BE(Number(seq & 0xffffffffn), 4);
  b.writeBigUInt64BE(seq, 8);
  randomBytes(ctLength + 16).copy(b, 16);
  return b;
}

/** G2's drops since `before`, by counter, once they add up to `n` or more (waiting up to `ms`). */
export function g2Drops(f: Figure2, before: Record<string, number>, n: number, ms: number, what: string) {
  return until(
    () => {
      const d = delta(drops(f, 2), before);
      return total(d) >= n ? d : undefined;
    },
    ms,
    what,
  );
}

/** How key-search messages between B and A look on the WAN in one family. */
export interface SearchOnWan {
  /** tcpdump's filter for them on G2's WAN link. */
  filter: string[];
  /** G2's destination search toward A among the packets captured so far in `pcap`, if there. */
  find(pcap: string): SearchMessage | undefined;
  /** A reply to `msg`, from A to B, as the attacker sends it. */
  reply(msg: SearchMessage): Uint8Array;
}

/**
 * Forged key-search replies raced against a genuine search: G1 is frozen (SIGSTOP) so that the genuine
 * reply waits while B's first packet to A holds G2's search; the attacker X reads the transaction id
 * off the WAN and answers first. G2 counts one drop per forged reply and installs no path from one;
 * released, G1's genuine reply completes the search and the held ping is answered.
 */
export async function raceForgedReplies(
  f: Figure2,
  dir: string,
  X: string,
  A: string,
  wire: SearchOnWan,
  ping: string,
): Promise<void> {
  const g1 = f.gateways.get('G1');
  assert.ok(g1?.pid, 'G1 runs');
  const wan = join(dir, 'wan-g2.pcap');
  const capture = await startCapture(f.tb, f.ns.R, 'g2', wan, wire.filter);
  const before = drops(f, 2);
  process.kill(g1.pid, 'SIGSTOP');
  let firstPing: ReturnType<typeof f.tb.spawn> | undefined;
  try {
    firstPing = f.tb.spawn(f.ns.B, 'ping', ['-c', '1', '-W', '20', A]);
    const m = await until(() => wire.find(wan), 5000, "G2's destination search toward A on the WAN");
    assert.equal(m.entries.at(-1)?.gateway, 'G2');
    const forged = forgedReplies(m, '10.200.1.2').map((r) => wire.reply(r));
    const sent = await inject(f.tb, X, join(dir, 'forged.bin'), forged);
    assert.equal(sent.sent, forged.length);
    const d = await g2Drops(f, before, forged.length, 5000, 'G2 to count the forged replies');
    assert.equal(total(d), forged.length, `one counted drop per forged reply: ${JSON.stringify(d)}`);
    for (const k of Object.keys(d)) assert.match(k, /^drop\.search-(forged|tampered|late-reply)$/, JSON.stringify(d));
    assert.ok(
      !f.status(2).paths.some((p) => p.remote === A && p.action === 'encrypt'),
      'no path installed from a forged reply',
    );
  } finally {
    process.kill(g1.pid, 'SIGCONT');
  }
  const pinged = await new Promise<number | null>((r) =>
    firstPing?.exitCode !== null ? r(firstPing?.exitCode ?? null) : firstPing.once('exit', r),
  );
  assert.equal(pinged, 0, `the first ${ping} B -> A, held during the search, is answered`);
  await stopCapture(capture);
  const path = f.status(2).paths.find((p) => p.remote === A);
  assert.ok(
    path && path.action === 'encrypt' && path.peer === 'G1',
    `G2's path to A after the genuine reply: ${JSON.stringify(path)}`,
  );
}

/**
 * Garbage from X as fast as it can send, for 4 s, while B pings A (the kernel's ping, 10 echoes in
 * 2 s): B and A keep talking, G2 keeps running, and every hostile packet that reached G2's WAN link
 * (all of them, unless the router fell behind) is counted by G2 as one drop, by its reason. The few
 * legitimate packets on the link (B's echoes, the authority's change stream) are not drops.
 */
export async function floodG2(
  f: Figure2,
  dir: string,
  X: string,
  A: string,
  garbage: Uint8Array[],
  ping: string,
): Promise<{ sent: number; arrived: number; drops: Record<string, number> }> {
  const wanRx = () => Number(f.tb.exec(f.ns.G2, 'cat', '/sys/class/net/wan0/statistics/rx_packets').trim());
  const wanRx0 = wanRx();
  const before = drops(f, 2);
  const flood = inject(f.tb, X, join(dir, 'garbage.bin'), garbage, 4);
  await new Promise((r) => setTimeout(r, 500));
  let received = 0;
  try {
    received = Number(
      /(\d+) received/.exec(f.tb.exec(f.ns.B, 'ping', '-c', '10', '-i', '0.2', '-W', '2', A))?.[1] ?? 0,
    );
  } catch (e) {
    received = Number(/(\d+) received/.exec(String((e as { stdout?: unknown }).stdout ?? e))?.[1] ?? 0);
  }
  const { sent } = await flood;
  assert.ok(sent > 10_000, `the attacker sent ${sent} packets`);
  assert.ok(received >= 9, `${ping} B -> A during the flood: ${received}/10 echoes answered`);
  assert.equal(f.gateways.get('G2')?.exitCode, null, 'G2 still runs');
  const arrived = wanRx() - wanRx0;
  const d = await g2Drops(
    f,
    before,
    Math.min(sent, arrived - 100),
    10_000,
    `G2 to count the ${arrived} packets that arrived (${sent} sent)`,
  );
  assert.ok(
    total(d) <= sent + 20,
    `no more drops than hostile packets (+ a few of B's under load): ${total(d)} for ${sent}: ${JSON.stringify(d)}`,
  );
  return { sent, arrived, drops: d };
}
