// Replay protection across a receiving gateway's restart (issue 10 point 3), on real Linux
// networking (seed 000 Figure 2 in namespaces): ESP that G2 sent to A is captured on the WAN, G1
// (A's gateway) is killed with SIGKILL or stopped with SIGTERM and started again, and an attacker
// on the WAN re-injects the capture. Nothing of it may reach A; G1 counts every injected packet as
// a drop; B and A keep talking. (docs/protocol.md §3.2: a restarted receiver accepts ESP on a
// sender's SA only from the sequence number the sender claims in a key search it answers.)
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { type Figure2 } from '../../src/demo/figure2.js';
import { ESP_FILTER, readPcap, readPcapFrames, startCapture, stopCapture } from '../support/capture.js';
import { inject, wanAttacker } from '../support/inject.js';
import { delta, drops as dropsOf, total } from '../support/drops.js';
import { netnsTest } from '../support/netns-gate.js';
import { inFigure2 } from './sites.js';

const drops = (f: Figure2) => dropsOf(f, 1);

const A = '10.1.0.10';
const B = '10.2.0.10';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls G1's drops until `n` more than `before` are counted, or `ms` pass; the difference by counter. */
async function dropsAfter(
  f: Figure2,
  before: Record<string, number>,
  n: number,
  ms: number,
): Promise<Record<string, number>> {
  const end = Date.now() + ms;
  let d = delta(drops(f), before);
  while (total(d) < n && Date.now() < end) {
    await sleep(200);
    d = delta(drops(f), before);
  }
  return d;
}

interface Outcome {
  how: string;
  captured: number;
  delivered: number;
  drops: Record<string, number>;
  resumed: boolean;
  deliveredAgain: number;
  dropsAgain: Record<string, number>;
}

async function replayAcrossRestart(
  f: Figure2,
  dir: string,
  X: string,
  how: 'SIGKILL' | 'SIGTERM',
  marker: string,
): Promise<Outcome> {
  const markerBytes = Buffer.from(marker, 'hex');
  // 1. Capture G2's ESP toward A while B pings A (20 echo requests with the marker).
  const espFile = join(dir, `esp-${how}.pcap`);
  const cap = await startCapture(f.tb, f.ns.R, 'g1', espFile, [`${ESP_FILTER} and src ${B} and dst ${A}`]);
  assert.equal(f.ping('B', 'A', { count: 20, pattern: marker }), true, 'B -> A before the restart');
  await sleep(300);
  await stopCapture(cap);
  const esp = readPcapFrames(espFile);

  // 2. G1 goes down and comes back.
  await (how === 'SIGKILL' ? f.killGateway(1) : f.stopGateway(1));
  await f.startGateway(1);

  // 3. The attacker re-injects the capture; A's LAN is watched for anything of it.
  const lanFile = join(dir, `lan-${how}.pcap`);
  const lan = await startCapture(f.tb, f.ns.A, 'eth0', lanFile, [`src ${B}`]);
  const before = drops(f);
  await inject(f.tb, X, join(dir, `replay-${how}.bin`), esp);
  await dropsAfter(f, before, esp.length, 8000);
  await sleep(500); // anything more than one drop per packet would show now
  const d = delta(drops(f), before);
  await stopCapture(lan);
  const delivered = readPcap(lanFile).filter((p) => p.payload.includes(markerBytes)).length;

  // 4. Legitimate traffic resumes, and the capture is still refused once G1 knows G2's SA again.
  const resumed = f.ping('B', 'A', { count: 3 });
  const lan2File = join(dir, `lan2-${how}.pcap`);
  const lan2 = await startCapture(f.tb, f.ns.A, 'eth0', lan2File, [`src ${B}`]);
  const before2 = drops(f);
  await inject(f.tb, X, join(dir, `replay2-${how}.bin`), esp);
  const d2 = await dropsAfter(f, before2, esp.length, 8000);
  await stopCapture(lan2);
  const deliveredAgain = readPcap(lan2File).filter((p) => p.payload.includes(markerBytes)).length;
  return { how, captured: esp.length, delivered, drops: d, resumed, deliveredAgain, dropsAgain: d2 };
}

netnsTest(
  'replay across a receiving gateway restart: ESP captured before SIGKILL/SIGTERM and re-injected after is never delivered, each packet a counted drop',
  { timeout: 300_000, needs: ['python3', 'tcpdump'] },
  async (t) => {
    await inFigure2({}, async (f, dir) => {
      // The attacker X hangs off the WAN router, which forwards whatever source address X uses.
      const X = wanAttacker(f);
      assert.equal(f.ping('A', 'B'), true);

      const outcomes: Outcome[] = [];
      // Distinct markers: what one round delivers cannot be mistaken for the other's.
      for (const [how, marker] of [
        ['SIGKILL', '7265706c61792d6b696c6c21'],
        ['SIGTERM', '7265706c61792d7465726d21'],
      ] as const) {
        const o = await replayAcrossRestart(f, dir, X, how, marker);
        t.diagnostic(JSON.stringify(o));
        outcomes.push(o);
      }
      for (const o of outcomes) {
        assert.ok(o.captured >= 18, `${o.how}: captured ${o.captured} ESP packets of B's 20 echo requests`);
        assert.equal(o.delivered, 0, `${o.how}: replayed packets delivered to A after the restart`);
        // Every replayed packet is a counted drop: refused before the floor was learned
        // (unverified-sa), or by the window once it was (replay), or, when the freshly started
        // gateway's JavaScript was still busy (its warm-up), at the full punt queue. A packet punted
        // before the floor and run through the executor again by the core afterwards shows up a
        // second time as drop.replay (the core echoing the executor's verdict).
        const d = o.drops;
        const once =
          (d['drop.unverified-sa'] ?? 0) + (d['executor.drop.replay'] ?? 0) + (d['datapath.punt.dropped'] ?? 0);
        assert.equal(once, o.captured, `${o.how}: one counted drop per replayed packet: ${JSON.stringify(d)}`);
        assert.ok((d['drop.replay'] ?? 0) <= (d['executor.drop.replay'] ?? 0), `${o.how}: ${JSON.stringify(d)}`);
        assert.ok(
          (d['drop.unverified-sa'] ?? 0) > 0,
          `${o.how}: the restarted G1 refused the SA before learning its floor: ${JSON.stringify(d)}`,
        );
        for (const k of Object.keys(d))
          assert.match(
            k,
            /^(drop\.unverified-sa|executor\.drop\.replay|drop\.replay|datapath\.punt\.dropped)$/,
            `${o.how}: ${JSON.stringify(d)}`,
          );
        assert.ok(o.resumed, `${o.how}: B -> A after the restart`);
        assert.equal(o.deliveredAgain, 0, `${o.how}: replayed again once the SA is known: delivered`);
        assert.deepEqual(o.dropsAgain, { 'executor.drop.replay': o.captured }, `${o.how}: replayed again: all replays`);
      }
    });
  },
);
