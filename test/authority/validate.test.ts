// Names, addresses, prefixes, durations and the overlap rule of memberships.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { Prefix } from '../../src/base/addr.js';
import { checkAddress, checkMembershipAdd, checkName, checkPrefixes, checkVpnId, compactPrefixes, parseDuration } from '../../src/authority/validate.js';

const P = (s: string): Prefix => Prefix.from(s);

describe('names', () => {
  it('accepts 1..63 bytes of UTF-8 that shows as what it is', () => {
    for (const n of ['a', 'gw-1', '東京 gateway', 'x'.repeat(63), 'é'.repeat(31) + 'x', 'a/b "c"', '🙂'.repeat(15)]) assert.ok(checkName('gateway', n).ok, n);
  });
  it('refuses empty, too long, control, format, bidi, separator, private-use and unassigned characters, white space at the ends, lone surrogates, non-strings', () => {
    const cases: [unknown, RegExp][] = [
      ['', /must not be empty/],
      ['x'.repeat(64), /64 bytes/],
      ['é'.repeat(32), /64 bytes/],
      ['🙂'.repeat(16), /64 bytes/],
      ['a\nb', /U\+000A/],
      ['tab\there', /U\+0009/],
      ['del\u007f', /U\+007F/],
      ['c1\u0085', /U\+0085/],
      ['\ud800x', /surrogate/],
      ['admin\u202Egpj.exe', /invisible format character U\+202E/],
      ['gw\u200B1', /invisible format character U\+200B/],
      ['\uFEFFgw1', /invisible format character U\+FEFF/],
      ['gw\u{E0041}', /invisible format character U\+E0041/],
      ['line\u2028break', /line or paragraph separator U\+2028/],
      ['para\u2029graph', /line or paragraph separator U\+2029/],
      ['private\uE000', /private-use character U\+E000/],
      ['plane15\u{F0000}', /private-use character U\+F0000/],
      ['unassigned\u{E0FFF}', /unassigned code point/],
      [' gw1', /white space/],
      ['gw1\u00A0', /white space/],
      [42, /must be a string/],
    ];
    for (const [n, re] of cases) {
      const r = checkName('gateway', n);
      assert.ok(!r.ok, JSON.stringify(n));
      assert.equal(r.error.code, 'bad-name');
      assert.match(r.error.message, re);
    }
  });
  it('agrees with the byte-length definition on arbitrary strings', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 40 }), (s) => {
        const bytes = Buffer.byteLength(s);
        const expected = bytes >= 1 && bytes <= 63 && !/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Co}\p{Cn}]/u.test(s) && !/^\s|\s$/u.test(s);
        assert.equal(checkName('x', s).ok, expected);
      }),
    );
  });
});

describe('VPN ids, addresses, durations', () => {
  it('VPN ids are u32 > 0', () => {
    for (const v of [1, 4294967295, 100]) assert.ok(checkVpnId(v).ok);
    for (const v of [0, -1, 4294967296, 1.5, '3', null]) assert.equal(checkVpnId(v).ok, false);
  });
  it('gateway addresses are unicast IPv4/IPv6, canonicalised', () => {
    assert.deepEqual(checkAddress('2001:DB8:0:0::1'), { ok: true, value: '2001:db8::1' });
    assert.deepEqual(checkAddress(' 192.0.2.1 '), { ok: true, value: '192.0.2.1' });
    for (const a of ['0.0.0.0', '::', '224.1.2.3', 'ff02::1', '255.255.255.255', '1.2.3', 'host.example', 'fe80::1%eth0']) assert.equal(checkAddress(a).ok, false, a);
  });
  it('durations', () => {
    assert.deepEqual(parseDuration('24h'), { ok: true, value: 86_400_000 });
    assert.deepEqual(parseDuration('1.5s'), { ok: true, value: 1500 });
    assert.deepEqual(parseDuration('0'), { ok: true, value: 0 });
    for (const d of ['', '10', '5x', '-1s', 'h']) assert.equal(parseDuration(d).ok, false, d);
  });
  it('prefix lists report the bad prefix precisely', () => {
    const r = checkPrefixes(['10.0.0.0/8', '10.1.2.3/16']);
    assert.ok(!r.ok);
    assert.equal(r.error.code, 'bad-cidr');
    assert.match(r.error.message, /host bits set.*10\.1\.0\.0\/16/);
  });
});

describe('the overlap rule', () => {
  const members = new Map<string, Prefix[]>([
    ['outer', [P('10.0.0.0/8')]],
    ['g2', [P('192.168.2.0/24')]],
  ]);

  it('refuses another gateway claiming an overlapping prefix in the same VPN', () => {
    const r = checkMembershipAdd('corp', members, 'inner', [P('10.1.1.0/24')]);
    assert.ok(!r.ok);
    assert.equal(r.error.code, 'ambiguous-prefix');
    assert.match(r.error.message, /10\.1\.1\.0\/24 overlaps 10\.0\.0\.0\/8, which gateway outer/);
  });
  it('refuses overlapping prefixes inside one membership; accepts the same prefix again as a no-op', () => {
    let r = checkMembershipAdd('corp', members, 'g2', [P('192.168.2.128/25')]);
    assert.ok(!r.ok && r.error.code === 'overlapping-prefixes');
    r = checkMembershipAdd('corp', members, 'g3', [P('172.16.0.0/12'), P('172.16.1.0/24')]);
    assert.ok(!r.ok && r.error.code === 'overlapping-prefixes');
    assert.deepEqual(checkMembershipAdd('corp', members, 'g2', [P('192.168.2.0/24')]), { ok: true, value: [] });
  });
  it('accepts disjoint prefixes and other address families', () => {
    const r = checkMembershipAdd('corp', members, 'g3', [P('11.0.0.0/8'), P('fd00::/8')]);
    assert.ok(r.ok);
    assert.deepEqual(r.value.map(String), ['11.0.0.0/8', 'fd00::/8']);
  });
  it('nested VPNs are a per-VPN matter: the check only ever sees one VPN', () => {
    // The inner gateway's department VPN has only itself; the company VPN has only the outer one.
    assert.ok(checkMembershipAdd('dept', new Map(), 'inner', [P('10.1.1.0/24')]).ok);
  });
  it('property: accepting changes one by one keeps every VPN unambiguous', () => {
    const prefix = fc.tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 8, max: 24 })).map(([a, b, len]) => Prefix.of(`10.${a}.${b}.0`, len));
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.constantFrom('g1', 'g2', 'g3'), fc.array(prefix, { minLength: 1, maxLength: 3 })), { maxLength: 25 }), (changes) => {
        const state = new Map<string, Prefix[]>();
        for (const [g, add] of changes) {
          const r = checkMembershipAdd('v', state, g, add);
          if (r.ok) state.set(g, [...(state.get(g) ?? []), ...r.value]);
        }
        const all = [...state].flatMap(([g, ps]) => ps.map((p) => ({ g, p })));
        for (let i = 0; i < all.length; i++)
          for (let j = i + 1; j < all.length; j++) assert.ok(!all[i].p.overlaps(all[j].p), `${all[i].g} ${all[i].p} vs ${all[j].g} ${all[j].p}`);
      }),
    );
  });
});

describe('the directory of protected prefixes', () => {
  it('compacts to the covering prefixes, keeping families apart', () => {
    assert.deepEqual(compactPrefixes([P('10.1.0.0/16'), P('10.0.0.0/8'), P('10.0.0.0/8'), P('192.168.0.0/24'), P('fd00::/8'), P('fd00:1::/32')]).map(String), [
      '10.0.0.0/8',
      '192.168.0.0/24',
      'fd00::/8',
    ]);
  });
  it('merges the two halves of a prefix, repeatedly', () => {
    assert.deepEqual(compactPrefixes([P('10.0.0.0/24'), P('10.0.1.0/24'), P('10.0.2.0/23'), P('10.0.4.0/24')]).map(String), ['10.0.0.0/22', '10.0.4.0/24']);
    const many = Array.from({ length: 1024 }, (_, i) => Prefix.of(`10.${i >> 8}.${i & 255}.0`, 24));
    assert.deepEqual(compactPrefixes(many).map(String), ['10.0.0.0/14']);
    assert.deepEqual(compactPrefixes([P('0.0.0.0/1'), P('128.0.0.0/1')]).map(String), ['0.0.0.0/0']);
  });
  it('property: every address covered before compaction is covered after', () => {
    const prefix = fc.tuple(fc.integer({ min: 0, max: 15 }), fc.integer({ min: 0, max: 15 }), fc.integer({ min: 0, max: 32 })).map(([a, b, len]) => Prefix.of(`10.${a}.${b}.0`, len));
    fc.assert(
      fc.property(fc.array(prefix, { maxLength: 30 }), fc.integer({ min: 0, max: 15 }), fc.integer({ min: 0, max: 15 }), fc.integer({ min: 0, max: 255 }), (ps, a, b, h) => {
        const ip = `10.${a}.${b}.${h}`;
        const c = compactPrefixes(ps);
        assert.equal(
          c.some((p) => p.contains(ip)),
          ps.some((p) => p.contains(ip)),
        );
        for (let i = 0; i < c.length; i++) for (let j = i + 1; j < c.length; j++) assert.ok(!c[i].overlaps(c[j]));
      }),
    );
  });
});
