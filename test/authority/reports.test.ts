// Gateways' status reports (src/authority/reports.ts and src/gateway/status-report.ts). It proves:
// what a gateway's status turns into (ages instead of its clock, the most recently used paths first,
// bounded) is what the authority accepts; any other JSON is refused with 400 and never throws
// anything else (property test); oversized lists, control characters, negative or fractional
// counts are refused; reports faster than one a second are answered 429; the last report is kept
// per gateway in the store and summed up in the gateway list (online, paths, drops by reason
// summed, searches); a gateway silent for twice its interval is offline.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ApiError } from '../../src/authority/errors.js';
import { isDropCounter, parseGatewayReport, REPORT_LIMITS } from '../../src/authority/reports.js';
import { REPORT_FORMAT, type GatewayReport } from '../../src/authority/wire.js';
import type { PathView } from '../../src/core/gateway-api.js';
import type { GatewayStatus } from '../../src/gateway/status.js';
import { reportOf } from '../../src/gateway/status-report.js';
import { enrollOffline, refusal, testStores, withAuthority } from './helpers/direct.js';

const NOW = 1_800_000_000_000;

function path(i: number, o: Partial<PathView> = {}): PathView {
  return {
    local: `10.1.0.${i % 250}`,
    remote: `10.2.${Math.floor(i / 250)}.${i % 250}`,
    action: 'encrypt',
    vpnId: 1,
    vpnName: 'VPN1',
    peer: 'G1',
    layers: [{ vpnId: 1, gateways: ['G2', 'G1'] }],
    reason: 'search',
    mtu: 1400,
    installedAt: NOW - 60_000,
    lastUsed: NOW - i,
    expiresAt: NOW + 60_000,
    packets: 10 + i,
    bytes: 1000 + i,
    ...o,
  };
}

function status(paths: PathView[], stats: Record<string, number> = {}): GatewayStatus {
  return {
    gateway: 'G2',
    address: '10.200.2.2',
    authorityVersion: 12,
    vpns: [{ id: 1, name: 'VPN1', mode: 'group', epoch: 3 }],
    startedAt: NOW - 3_600_000,
    now: NOW,
    paths,
    ike: [
      {
        peer: 'GB@b',
        vpnId: 7,
        role: 'initiator',
        state: 'established',
        spiI: '01',
        spiR: '02',
        remote: '10.200.2.2',
        ageMs: 1234.5,
        children: [{ inboundSpi: 1, outboundSpi: 2, state: 'installed', ageMs: 1, rekeyInMs: 2 }],
      },
    ],
    stats: {
      'search.started': 4,
      'drop.unknown-spi': 2,
      'executor.drop.replay': 3,
      'kernel.tun-outside.queue-dropped': 1,
      'table.paths': paths.length,
      ...stats,
    },
  };
}

describe('a gateway status report', () => {
  it('is the gateway status with ages instead of times, the most recently used paths first, at most 256', () => {
    const r = reportOf(
      status([
        path(5, { lastUsed: NOW - 5000 }),
        path(1),
        path(3, { action: 'discard', vpnId: undefined, vpnName: undefined, peer: undefined, layers: undefined }),
      ]),
      10_000,
    );
    assert.deepEqual(
      r.paths.map((p) => [p.remote, p.ageMs, p.idleMs]),
      [
        ['10.2.0.1', 60_000, 1],
        ['10.2.0.3', 60_000, 3],
        ['10.2.0.5', 60_000, 5000],
      ],
    );
    assert.equal(r.uptimeMs, 3_600_000);
    assert.deepEqual(r.ike, [
      {
        peer: 'GB@b',
        vpnId: 7,
        role: 'initiator',
        state: 'established',
        remote: '10.200.2.2',
        ageMs: 1235,
        childSas: 1,
      },
    ]);
    assert.deepEqual(parseGatewayReport(JSON.parse(JSON.stringify(r))), r, 'the authority accepts it as it is');
    const many = reportOf(status(Array.from({ length: 1000 }, (_, i) => path(i))), 10_000);
    assert.equal(many.paths.length, REPORT_LIMITS.paths);
    assert.equal(many.pathsTotal, 1000);
    assert.equal(many.paths[0].remote, '10.2.0.0', 'the most recently used');
    assert.deepEqual(parseGatewayReport(JSON.parse(JSON.stringify(many))), many);
  });

  it('counts as drops exactly the counters docs/gateway.md lists', () => {
    for (const k of [
      'drop.unknown-spi',
      'executor.drop.replay',
      'datapath.punt.dropped',
      'datapath.rx.bad',
      'kernel.tun-outside.queue-dropped',
      'datapath.udp-punt.bad-spi',
    ])
      assert.ok(isDropCounter(k), k);
    for (const k of ['search.started', 'table.paths', 'executor.encrypt.packets', 'ike.sa-up', 'pmtu.path'])
      assert.ok(!isDropCounter(k), k);
  });

  it('any JSON that is not a valid report is refused with 400 bad-report, nothing else is thrown', () => {
    const valid = reportOf(status([path(1)]), 10_000);
    const mutate = fc.oneof(
      fc.jsonValue(),
      fc
        .record({ key: fc.constantFrom(...Object.keys(valid)), value: fc.jsonValue() })
        .map(({ key, value }) => ({ ...valid, [key]: value })),
      fc
        .record({ key: fc.constantFrom(...Object.keys(valid.paths[0])), value: fc.jsonValue() })
        .map(({ key, value }) => ({ ...valid, paths: [{ ...valid.paths[0], [key]: value }] })),
    );
    fc.assert(
      fc.property(mutate, (v) => {
        try {
          const r = parseGatewayReport(v);
          assert.equal(r.format, REPORT_FORMAT);
          // What it accepted is a report again, unchanged.
          assert.deepEqual(parseGatewayReport(JSON.parse(JSON.stringify(r))), r);
        } catch (e) {
          assert.ok(e instanceof ApiError && e.status === 400 && e.code === 'bad-report', String(e));
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('carries IPv6 paths and IKE peers: the longest IPv6 address fits, a v6 remote with its port too', () => {
    const longest = 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff';
    const r = reportOf(status([path(1, { local: '2001:db8:1::10', remote: longest }), path(2)]), 10_000);
    r.ike = [{ ...r.ike[0], remote: `[${longest}]:4500` }];
    const parsed = parseGatewayReport(JSON.parse(JSON.stringify(r)));
    assert.ok(parsed.paths.some((p) => p.local === '2001:db8:1::10' && p.remote === longest));
    assert.equal(parsed.ike[0].remote, `[${longest}]:4500`);
  });

  it('refuses oversized lists, control characters, negative or fractional counts', () => {
    const valid: GatewayReport = reportOf(status([path(1)]), 10_000);
    const bad = (patch: object, why: RegExp) =>
      assert.throws(
        () => parseGatewayReport({ ...valid, ...patch }),
        (e: ApiError) => e.code === 'bad-report' && why.test(e.message),
      );
    bad({ paths: Array.from({ length: 257 }, () => valid.paths[0]) }, /paths has 257 entries/);
    bad(
      { counters: Object.fromEntries(Array.from({ length: 1025 }, (_, i) => [`c${i}`, 1])) },
      /counters has 1025 entries/,
    );
    bad({ counters: { 'drop.x': -1 } }, /counter "drop.x"/);
    bad({ counters: { 'drop.x': 1.5 } }, /counter "drop.x"/);
    assert.ok(Object.is(parseGatewayReport({ ...valid, pathsTotal: -0 }).pathsTotal, 0), '-0 is kept as 0');
    bad({ counters: { 'drop.\u0007': 1 } }, /control characters/);
    bad({ paths: [{ ...valid.paths[0], reason: 'x'.repeat(101) }] }, /paths\[0\]\.reason/);
    bad({ paths: [{ ...valid.paths[0], action: 'teleport' }] }, /action/);
    bad({ vpns: [{ id: 1, name: 'a\nb', mode: 'group' }] }, /control character/);
    bad({ format: 'kasane-gateway-report/2' }, /not a kasane-gateway-report\/1/);
    bad({ intervalMs: 3_600_001 }, /intervalMs/);
  });
});

for (const store of await testStores()) {
  describe(`status reports on ${store.kind}`, { skip: store.skip }, () => {
    it('the last report per gateway is kept, summed up in the gateway list, offline after twice its interval', () =>
      withAuthority(store, async (a) => {
        await enrollOffline(a.service, 'G1', '10.200.1.2');
        await enrollOffline(a.service, 'G2', '10.200.2.2');
        const heard: string[] = [];
        a.service.reports.onReport((g) => heard.push(g));
        assert.deepEqual(await refusal(a.service.gatewayStatus('G2')), [404, 'no-report']);
        assert.deepEqual(await refusal(a.service.gatewayStatus('nobody')), [404, 'unknown-gateway']);
        const first = reportOf(status([path(1), path(2, { action: 'discard' })]), 10_000);
        assert.deepEqual(await a.service.reportStatus('G2', JSON.parse(JSON.stringify(first))), {
          accepted: true,
          nextInMs: 10_000,
        });
        assert.deepEqual(heard, ['G2']);
        const view = await a.service.gatewayStatus('G2');
        assert.deepEqual(view, { gateway: 'G2', receivedAt: a.clock.now, online: true, report: first });
        const list = await a.service.listGateways();
        assert.equal(list.find((g) => g.name === 'G1')!.lastReport, null);
        assert.deepEqual(list.find((g) => g.name === 'G2')!.lastReport, {
          receivedAt: a.clock.now,
          online: true,
          uptimeMs: 3_600_000,
          paths: 2,
          encrypting: 1,
          drops: 6,
          searches: 4,
        });

        assert.deepEqual(await refusal(a.service.reportStatus('G2', first)), [429, 'report-too-frequent']);
        a.clock.now += 1000;
        const second = reportOf(status([path(1)], { 'drop.unknown-spi': 10 }), 10_000);
        await a.service.reportStatus('G2', second);
        assert.equal((await a.service.getGateway('G2')).lastReport!.drops, 14);
        assert.deepEqual(await refusal(a.service.reportStatus('G1', { format: REPORT_FORMAT })), [400, 'bad-report']);

        a.clock.now += 2 * 10_000 + 5000;
        assert.equal((await a.service.getGateway('G2')).lastReport!.online, true);
        a.clock.now += 1;
        assert.equal((await a.service.getGateway('G2')).lastReport!.online, false);
        assert.equal((await a.service.gatewayStatus('G2')).online, false);
      }));
  });
}
