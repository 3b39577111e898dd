// The gateway's edge modules in-process: the core driver's single timer, the status socket and
// its rendering, and the Prometheus metrics read from the core.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Prefix } from '../../src/base/addr.js';
import { GatewayCore } from '../../src/core/gateway-core.js';
import { buildIpv4, PROTO_ICMP } from '../../src/core/packet/ipv4.js';
import { buildIcmpEcho } from '../../src/core/packet/icmp.js';
import { seededRandom } from '../../src/base/random.js';
import { CoreDriver, type Clock } from '../../src/gateway/core-driver.js';
import { gatewayRegistry } from '../../src/gateway/metrics.js';
import { queryStatus, renderStatus, serveStatus, type GatewayStatus } from '../../src/gateway/status.js';
import { snapshotOf, vpnView } from '../support/core.js';

function core(attached = [Prefix.from('10.2.0.0/24')]): GatewayCore {
  return new GatewayCore({
    config: { id: 'G2', address: '192.0.2.2', attached },
    snapshot: {
      ...snapshotOf([
        {
          ...vpnView(
            1,
            'group',
            [
              { gw: 'G1', prefix: '10.1.0.0/24', spi: 0x101 },
              { gw: 'G2', prefix: '10.2.0.0/24', spi: 0x102 },
            ],
            new Uint8Array(32).fill(1),
          ),
          name: 'VPN1',
        },
      ]),
      version: 4,
    },
    now: 0,
    random: seededRandom('edge'),
  });
}

class ManualClock implements Clock {
  t = 0;
  timers = new Map<number, { at: number; fn: () => void }>();
  private id = 0;
  now() {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number) {
    this.timers.set(++this.id, { at: this.t + ms, fn });
    return this.id;
  }
  clearTimeout(h: unknown) {
    this.timers.delete(h as number);
  }
  advance(to: number) {
    for (;;) {
      const due = [...this.timers.entries()].filter(([, v]) => v.at <= to).sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      this.timers.delete(due[0]);
      this.t = due[1].at;
      due[1].fn();
    }
    this.t = to;
  }
}

const ping = (seq: number) =>
  buildIpv4({
    src: '10.2.0.10',
    dst: '10.1.0.10',
    protocol: PROTO_ICMP,
    payload: buildIcmpEcho({ type: 8, id: 1, seq, data: new Uint8Array(8) }),
  });

test('core driver: keeps one timer for the next deadline and runs the search on the clock', () => {
  const clock = new ManualClock();
  const emitted: string[] = [];
  // B is not on an attached LAN here (as behind a router): the search starts at the source.
  const d = new CoreDriver(
    core([]),
    { emit: (_b, a) => emitted.push(a.note.op === 'search-request' ? `search-request(${a.note.phase})` : a.note.op) },
    clock,
  );
  assert.equal(clock.timers.size, 1, 'the sweep timer');
  d.packet('inside', ping(1));
  assert.deepEqual(emitted, ['search-request(source)']);
  assert.equal(clock.timers.size, 1, 'still one timer, re-armed for the source-search timeout');
  clock.advance(250); // the source terminal is silent here: the driver's timer moves the search on
  assert.deepEqual(emitted, ['search-request(source)', 'search-request(destination)']);
  clock.advance(250 + 1000 + 2000 + 4000 + 8000); // every retry times out (backoff 1, 2, 4, 8 s)
  assert.equal(emitted.filter((e) => e === 'search-request(destination)').length, 4);
  assert.equal(d.core.paths().find((p) => p.remote === '10.1.0.10')?.action, 'discard');
  d.stop();
  assert.equal(clock.timers.size, 0);
});

test('core driver: a later deadline leaves the armed timer alone (it fires, finds nothing due, re-arms); an earlier one moves it', () => {
  const clock = new ManualClock();
  let deadline: number | undefined = 1000;
  const ticks: number[] = [];
  const stub = {
    nextDeadline: () => deadline,
    onPacket: () => [],
    onTick: (now: number) => {
      ticks.push(now);
      return [];
    },
  } as unknown as GatewayCore;
  let cleared = 0;
  const clear = clock.clearTimeout.bind(clock);
  clock.clearTimeout = (h: unknown) => {
    cleared++;
    clear(h);
  };
  const d = new CoreDriver(stub, { emit: () => {} }, clock);
  assert.deepEqual(
    [...clock.timers.values()].map((t) => t.at),
    [1000],
  );
  deadline = 5000; // pushed later by a packet: no timer moved
  d.packet('inside', ping(1));
  assert.equal(cleared, 0);
  assert.deepEqual(
    [...clock.timers.values()].map((t) => t.at),
    [1000],
  );
  clock.advance(1000); // fires early: the core is ticked, then the driver arms for 5000
  assert.deepEqual(ticks, [1000]);
  assert.deepEqual(
    [...clock.timers.values()].map((t) => t.at),
    [5000],
  );
  deadline = 2000; // earlier: moved at once
  d.packet('inside', ping(2));
  assert.equal(cleared, 1);
  assert.deepEqual(
    [...clock.timers.values()].map((t) => t.at),
    [2000],
  );
  deadline = undefined; // nothing due any more: the armed timer just fires and is not re-armed
  d.packet('inside', ping(3));
  clock.advance(2000);
  assert.deepEqual(ticks, [1000, 2000]);
  assert.equal(clock.timers.size, 0);
  d.stop();
});

test('status socket: serves the key table; the client renders it and explains a missing gateway', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kasane-status-'));
  const c = core();
  c.onPacket('inside', ping(1), 0);
  const status = (): GatewayStatus => ({
    gateway: 'G2',
    address: '192.0.2.2',
    authorityVersion: 4,
    vpns: [{ id: 1, name: 'VPN1', mode: 'group', epoch: 1 }],
    startedAt: 0,
    now: 5000,
    paths: c.paths(),
    stats: c.stats(),
    ikeLoad: { halfOpen: 3, fragmentBytes: 1200, refusedKept: 1 },
  });
  const server = await serveStatus(join(dir, 'status.sock'), status);
  try {
    const s = await queryStatus(join(dir, 'status.sock'));
    assert.equal(s.gateway, 'G2');
    assert.equal(s.paths[0].action, 'pending');
    const text = renderStatus(s);
    assert.match(text, /Key table \(1 paths\)/);
    assert.match(text, /10\.2\.0\.10\s+10\.1\.0\.10\s+pending/);
    assert.match(text, /search\.started\s+1/);
    assert.match(text, /IKE strangers: 3 half-open SAs, 1200 bytes of fragments, 1 refusals kept/);
  } finally {
    server.close();
  }
  await assert.rejects(queryStatus(join(dir, 'nothing.sock')), /not running/);
  rmSync(dir, { recursive: true, force: true });
});

test('metrics: drops, searches and key-table gauges in Prometheus text format', async () => {
  const c = core();
  c.onPacket('inside', ping(1), 0);
  c.onPacket('outside', new Uint8Array([1, 2, 3]), 1);
  const registry = gatewayRegistry(() => c, 'G2');
  const text = await registry.metrics();
  assert.match(text, /kasane_drops_total\{by="executor",reason="malformed",gateway="G2"\} 1/);
  assert.match(text, /kasane_search_events_total\{event="started",gateway="G2"\} 1/);
  assert.match(text, /kasane_key_table_paths\{action="pending",gateway="G2"\} 1/);
  assert.match(text, /kasane_pending_packets\{gateway="G2"\} 1/);
  assert.match(text, /kasane_receive_sas_awaiting_floor\{gateway="G2"\} 0/);
  // Counters only grow by what the core counted since the last scrape.
  c.onPacket('outside', new Uint8Array([4]), 2);
  assert.match(await registry.metrics(), /kasane_drops_total\{by="executor",reason="malformed",gateway="G2"\} 2/);
});

test("metrics: drops outside the core (punt-queue overflow, bad frames, the kernel's TUN queues) are drops too", async () => {
  const c = core();
  const extra = {
    'datapath.punt.dropped': 3,
    'datapath.rx.bad': 2,
    'kernel.tun-outside.queue-dropped': 7,
    'datapath.punt.delivered': 99,
  };
  const text = await gatewayRegistry(
    () => c,
    'G2',
    () => ({ ...c.stats(), ...extra }),
  ).metrics();
  assert.match(text, /kasane_drops_total\{by="datapath",reason="punt-queue-full",gateway="G2"\} 3/);
  assert.match(text, /kasane_drops_total\{by="datapath",reason="bad-frame",gateway="G2"\} 2/);
  assert.match(text, /kasane_drops_total\{by="kernel",reason="tun-outside-queue-full",gateway="G2"\} 7/);
  assert.doesNotMatch(text, /reason="delivered"/, 'delivered punts are not drops');
});
