// IKEv2 over IPv6 (issue 14): IKE SAs between gateways with IPv6 outside addresses, IPv6 traffic
// selectors (TS_IPV6_ADDR_RANGE) over either family (v6 in v6, v6 in v4, v4 in v6), dual-stack
// gateways, NAT detection over IPv6 addresses and ports, selectors that are not prefixes,
// half-open limits per IPv6 /64 and /48, and fragments sized for an IPv6 header.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ipFromBytes, Prefix } from '../../../src/base/addr.js';
import { natDetectionHash } from '../../../src/ike/crypto/natd.js';
import { coversPrefixes, sameSelectors } from '../../../src/ike/engine/tasks/child.js';
import {
  decodeMessage,
  decodeTsBody,
  encodeTsBody,
  ExchangeType,
  NotifyType,
  selectorFromPrefix,
  TsType,
  type TrafficSelector,
} from '../../../src/ike/message/index.js';
import { assertPaired, IP_A, IP_B, IP6_A, IP6_B, V4_LAYOUT, V6_LAYOUT, World, type Layout } from './net.js';
import { initAgainst } from './attacker.js';

const kinds = (w: World, side: 'a' | 'b') => w.events(side).map((e) => e.event);
const range = (start: string, end: string, over: Partial<TrafficSelector> = {}): TrafficSelector =>
  ({
    tsType: start.includes(':') ? TsType.TS_IPV6_ADDR_RANGE : TsType.TS_IPV4_ADDR_RANGE,
    ipProtocol: 0,
    startPort: 0,
    endPort: 65535,
    startAddr: start,
    endAddr: end,
    ...over,
  }) as TrafficSelector;
const prefixes = (...p: string[]) => p.map((x) => Prefix.from(x));

for (const from of ['a', 'b'] as const) {
  test(`v6 in v6, ${from === 'a' ? 'A' : 'B'} initiates: IKE on [v6]:500 then [v6]:4500, Child SA between the IPv6 addresses with the IPv6 prefixes`, async () => {
    const w = await World.make({ layout: V6_LAYOUT });
    w.connect(from);
    assert.deepEqual(kinds(w, 'a'), ['ike-up', 'child-up']);
    assert.deepEqual(kinds(w, 'b'), ['ike-up', 'child-up']);
    assertPaired(w);
    const [ca, cb] = [w.current('a')!, w.current('b')!];
    assert.deepEqual(ca.local, { address: IP6_A, port: 4500 });
    assert.deepEqual(ca.remote, { address: IP6_B, port: 4500 });
    assert.deepEqual(cb.remote, { address: IP6_A, port: 4500 });
    assert.deepEqual(ca.localPrefixes.map(String), ['2001:db8:1::/64']);
    assert.deepEqual(ca.remotePrefixes.map(String), ['2001:db8:2::/64']);
    const ports = w.log[from].sent.map((d) => `[${d.from.address}]:${d.from.port}>[${d.to.address}]:${d.to.port}`);
    const [me, peer] = from === 'a' ? [IP6_A, IP6_B] : [IP6_B, IP6_A];
    assert.equal(ports[0], `[${me}]:500>[${peer}]:500`);
    assert.ok(
      ports.slice(1).every((p) => p === `[${me}]:4500>[${peer}]:4500`),
      ports.join(' '),
    );
    // No translator on the way: NAT detection finds none, on either side.
    for (const e of [w.a, w.b])
      assert.deepEqual(
        e.status(w.now).map((s) => s.nat),
        [{ local: false, remote: false }],
      );
    assert.equal(w.a.status(w.now)[0].remote, `[${IP6_B}]:4500`, 'an IPv6 endpoint is written with brackets');
    assert.deepEqual(w.events('a', 'ike-up')[0].detail?.nat, { local: false, remote: false });
  });
}

test('NAT detection hashes the 16-byte IPv6 addresses and the ports (RFC 7296 §2.23)', async () => {
  const w = await World.make({ layout: V6_LAYOUT });
  w.connect('a');
  const req = decodeMessage(w.log.a.sent[0].bytes);
  assert.ok(req.ok);
  const { spiI } = req.value.message.header;
  const notifyData = (type: number) => req.value.message.payloads.find((p) => p.kind === 'N' && p.notifyType === type);
  const src = notifyData(NotifyType.NAT_DETECTION_SOURCE_IP);
  const dst = notifyData(NotifyType.NAT_DETECTION_DESTINATION_IP);
  assert.ok(src?.kind === 'N' && dst?.kind === 'N');
  assert.ok(src.data.equals(natDetectionHash(spiI, Buffer.alloc(8), IP6_A, 500)));
  assert.ok(dst.data.equals(natDetectionHash(spiI, Buffer.alloc(8), IP6_B, 500)));
});

test('an IPv6 prefix translator (NPTv6) in front of A: both sides detect it, the SA comes up with A at its translated address', async () => {
  const inside = 'fd00:a::1';
  const layout: Layout = { ...V6_LAYOUT, a: [inside] };
  const w = await World.make({ layout });
  w.translate.set(inside, IP6_A); // B's authority knows A by its outside address
  w.connect('a');
  assert.deepEqual(kinds(w, 'a'), ['ike-up', 'child-up']);
  assertPaired(w);
  assert.deepEqual(w.a.status(w.now)[0].nat, { local: true, remote: false }, 'A is behind the translator');
  assert.deepEqual(w.b.status(w.now)[0].nat, { local: false, remote: true }, 'B sees A behind it');
  assert.deepEqual(w.current('b')!.remote, { address: IP6_A, port: 4500 });
  assert.deepEqual(w.current('a')!.local, { address: inside, port: 4500 });
});

test('v6 in v4: IPv6 prefixes (TS_IPV6_ADDR_RANGE) over IPv4 outside addresses', async () => {
  const w = await World.make({
    layout: { ...V4_LAYOUT, prefixesA: ['2001:db8:1::/64'], prefixesB: ['2001:db8:2::/64'] },
  });
  w.connect('a');
  assert.deepEqual(kinds(w, 'b'), ['ike-up', 'child-up']);
  assertPaired(w);
  assert.deepEqual(w.current('a')!.remote, { address: IP_B, port: 4500 });
  assert.deepEqual(w.current('b')!.remotePrefixes.map(String), ['2001:db8:1::/64']);
});

test('v4 in v6, and both families of prefixes in one Child SA', async () => {
  const w = await World.make({
    layout: { ...V6_LAYOUT, prefixesA: ['10.1.0.0/24', '2001:db8:1::/64'], prefixesB: ['10.2.0.0/24'] },
  });
  w.connect('b');
  assert.deepEqual(kinds(w, 'a'), ['ike-up', 'child-up']);
  assertPaired(w);
  assert.deepEqual(w.current('a')!.remote, { address: IP6_B, port: 4500 });
  assert.deepEqual(w.current('b')!.remotePrefixes.map(String), ['10.1.0.0/24', '2001:db8:1::/64']);
});

test('dual stack: each IKE SA uses our address of the family the peer is delivered at', async () => {
  // A has both; B is reachable only over IPv6.
  const v6 = await World.make({ layout: { ...V6_LAYOUT, a: [IP_A, IP6_A] } });
  v6.connect('a');
  assertPaired(v6);
  assert.deepEqual(v6.current('a')!.local, { address: IP6_A, port: 4500 });
  assert.ok(v6.log.a.sent.every((d) => d.from.address === IP6_A));
  const initA = decodeMessage(v6.log.a.sent[0].bytes);
  assert.ok(initA.ok);
  const src = initA.value.message.payloads.find(
    (p) => p.kind === 'N' && p.notifyType === NotifyType.NAT_DETECTION_SOURCE_IP,
  );
  assert.ok(
    src?.kind === 'N' &&
      src.data.equals(natDetectionHash(initA.value.message.header.spiI, Buffer.alloc(8), IP6_A, 500)),
    'NAT-D names the v6 address',
  );
  assert.deepEqual(v6.a.status(v6.now)[0].nat, { local: false, remote: false });
  // The same A toward a peer reachable only over IPv4, as responder.
  const v4 = await World.make({ layout: { ...V4_LAYOUT, a: [IP6_A, IP_A] } });
  v4.connect('b');
  assertPaired(v4);
  assert.deepEqual(v4.current('a')!.local, { address: IP_A, port: 4500 });
  assert.deepEqual(v4.a.status(v4.now)[0].nat, { local: false, remote: false });
});

test('a peer delivered at an address of a family this gateway has no address of: failed, nothing sent', async () => {
  const w = await World.make({ layout: { ...V4_LAYOUT, aSeesB: IP6_B } });
  const o = w.take('a', w.a.initiate('gb', 7, w.now));
  assert.equal(o.send.length, 0);
  assert.match(w.events('a', 'failed')[0].reason ?? '', /^no-local-address/);
  assert.deepEqual(
    o.remove.map((r) => r.last),
    [true],
    'the core hears that the path has no Child SA',
  );
});

test("the responder narrows a wider offer to the VPN's prefixes; the initiator refuses an answer narrower than it asked", async () => {
  const w = await World.make({ layout: V6_LAYOUT });
  // A's authority gives it a wider prefix than B's authority knows A by.
  w.peersOfA = [{ ...w.peersOfA[0], localPrefixes: prefixes('2001:db8::/32') }];
  w.connect('a');
  // B accepted the superset, narrowed to 2001:db8:1::/64; A then refuses the narrowed SA and deletes it.
  assert.deepEqual(kinds(w, 'b'), ['ike-up', 'child-up', 'child-down', 'ike-down']);
  assert.deepEqual(w.log.b.installs[0].remotePrefixes.map(String), ['2001:db8:1::/64']);
  assert.match(w.events('a', 'failed')[0]?.reason ?? '', /child-ts-narrowed/);
  // The other way round: B would need more than A offers: refused with TS_UNACCEPTABLE.
  const less = await World.make({ layout: V6_LAYOUT });
  less.peersOfB = [{ ...less.peersOfB[0], remotePrefixes: prefixes('2001:db8:1::/63') }];
  less.connect('a');
  assert.match(less.events('b', 'auth-failed')[0]?.reason ?? '', /child-ts-unacceptable/);
});

test('selectors: ranges that are not prefixes, split and merged, both families; protocol or port limits never carry a prefix', () => {
  const p64 = prefixes('2001:db8:1::/64');
  // One range for two adjacent /64s, and a prefix given as two halves.
  assert.ok(
    sameSelectors(
      [range('2001:db8:1::', '2001:db8:1:1:ffff:ffff:ffff:ffff')],
      prefixes('2001:db8:1::/64', '2001:db8:1:1::/64'),
    ),
  );
  assert.ok(
    sameSelectors(
      [
        range('2001:db8:1:0:8000::', '2001:db8:1::ffff:ffff:ffff:ffff'),
        range('2001:db8:1::', '2001:db8:1::7fff:ffff:ffff:ffff'),
      ],
      p64,
    ),
  );
  assert.ok(!sameSelectors([range('2001:db8:1::', '2001:db8:1::ffff:ffff:ffff:fffe')], p64), 'one address short');
  assert.ok(
    !sameSelectors([...p64.map((p) => selectorFromPrefix(p)), range('10.0.0.0', '10.0.0.255')], p64),
    'an extra IPv4 range',
  );
  assert.ok(
    !sameSelectors([range('2001:db8:1::', '2001:db8:1::ffff:ffff:ffff:ffff', { ipProtocol: 58 })], p64),
    'ICMPv6 only',
  );
  assert.ok(!sameSelectors([{ tsType: 10, byte1: 0, data: Buffer.alloc(4) }], p64), 'an opaque selector');
  // Covering: a wider range that is not a prefix, plus an IPv4 range the VPN does not have.
  assert.ok(coversPrefixes([range('0.0.0.0', '255.255.255.255'), range('2001:db8::5', '2001:db8:7::')], p64));
  assert.ok(!coversPrefixes([range('2001:db8:1::1', '2001:db8:2::')], p64), 'misses the first address');
  assert.ok(
    !coversPrefixes([range('::', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', { startPort: 1 })], p64),
    'not every port',
  );
  assert.ok(
    !coversPrefixes([range('10.0.0.0', '10.255.255.255')], prefixes('10.1.0.0/24', '2001:db8:1::/64')),
    'the v6 prefix is not covered',
  );
});

test('TS_IPV6_ADDR_RANGE encodes to 40 bytes and decodes to the same selector (any prefix, any range)', () => {
  const hex16 = fc.uint8Array({ minLength: 16, maxLength: 16 });
  fc.assert(
    fc.property(
      hex16,
      fc.integer({ min: 0, max: 128 }),
      hex16,
      fc.integer({ min: 0, max: 255 }),
      (bytes, len, other, proto) => {
        const p = Prefix.of(ipFromBytes(bytes, 0, 6), len);
        const s = selectorFromPrefix(p, { ipProtocol: proto });
        const sels = [
          s,
          range(s.startAddr, ipFromBytes(other, 0, 6), { ipProtocol: proto, startPort: 500, endPort: 4500 }),
        ];
        const body = encodeTsBody(sels);
        assert.equal(body.length, 4 + 2 * 40);
        const back = decodeTsBody(body, 0, body.length, 44);
        assert.ok(back.ok);
        assert.deepEqual(back.value, sels);
        assert.equal(coversPrefixes([s], [p]), proto === 0);
        assert.equal(sameSelectors([s], [p]), proto === 0);
      },
    ),
    { numRuns: 300 },
  );
});

test('half-open limits key IPv6 sources by /64 (one host may hold all of it) and by /48', async () => {
  const LIMITS = { cookieThreshold: 16, maxHalfOpen: 256, maxHalfOpenPerAddress: 8, maxHalfOpenPerPrefix: 32 };
  const w = await World.make({ layout: V6_LAYOUT, timers: LIMITS });
  const B_AT = { address: IP6_B, port: 500 };
  // Every request from another address of one /64: one bucket.
  for (let i = 1; i <= 200; i++) initAgainst(w.b, B_AT, `2001:db8:66:1::${i.toString(16)}`, w.now);
  assert.equal(w.b.load().halfOpen, LIMITS.maxHalfOpenPerAddress);
  // Other /64s of the same /48: held to the prefix limit.
  for (let net = 2; net <= 100; net++)
    for (let i = 1; i <= 3; i++) initAgainst(w.b, B_AT, `2001:db8:66:${net.toString(16)}::${i}`, w.now);
  assert.equal(w.b.load().halfOpen, LIMITS.maxHalfOpenPerPrefix);
  // A peer elsewhere still establishes.
  w.connect('a');
  assert.equal(w.events('a', 'ike-up').length, 1, JSON.stringify(w.log.a.events));
  assertPaired(w);
});

test('fragments over IPv6: every IKE datagram fits fragmentSize with the 40-byte IPv6 header (1280 = the IPv6 minimum MTU)', async () => {
  for (const fragmentSize of [1280, 600]) {
    const w = await World.make({ layout: V6_LAYOUT, timers: { fragmentSize } });
    w.connect('a');
    assertPaired(w);
    for (const side of ['a', 'b'] as const) {
      for (const d of w.log[side].sent) {
        const marker = d.from.port === 4500 ? 4 : 0;
        if (
          decodeMessage(d.bytes).ok &&
          (decodeMessage(d.bytes) as { value: { message: { header: { exchangeType: number } } } }).value.message.header
            .exchangeType === ExchangeType.IKE_SA_INIT
        )
          continue;
        assert.ok(
          d.bytes.length + 40 + 8 + marker <= fragmentSize,
          `${side}: ${d.bytes.length} bytes with fragmentSize ${fragmentSize}`,
        );
      }
    }
    const skf = w.log.a.sent.filter((d) => {
      const m = decodeMessage(d.bytes);
      return m.ok && m.value.message.encrypted?.kind === 'SKF';
    });
    if (fragmentSize === 600) assert.ok(skf.length >= 2, 'IKE_AUTH went in fragments');
  }
});
