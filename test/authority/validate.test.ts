// Names, addresses, prefixes, durations and the overlap rule of memberships.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { Prefix } from '../../src/base/addr.js';
import {
  checkAddress,
  checkMembershipAdd,
  checkName,
  checkPrefixes,
  checkVpnId,
  compactPrefixes,
  parseDuration,
} from '../../src/authority/validate.js';

const P = (s: string): Prefix => Prefix.from(s);

describe('names', () => {
  it('accepts 1..63 bytes of UTF-8 that shows as what it is', () => {
    for (const n of ['a', 'gw-1', '東京 gateway', 'x'.repeat(63), 'é'.repeat(31) + 'x', 'a/b "c"', '🙂'.repeat(15)])
      assert.ok(checkName('gateway', n).ok, n);
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
        const expected =
          bytes >= 1 && bytes <= 63 && !/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Co}\p{Cn}]/u.test(s) && !/^\s|\s$/u.test(s);
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
    for (const a of [
      '0.0.0.0',
      '::',
      '224.1.2.3',
      'ff02::1',
      '255.255.255.255',
      '1.2.3',
      'host.example',
      'fe80::1%eth0',
    ])
      assert.equal(checkAddress(a).ok, false, a);
  });
  it('IPv6 outside addresses: canonical (RFC 5952); v4-mapped and link-local refused, saying what to give instead', () => {
    assert.deepEqual(checkAddress('2001:0DB8:0000:0000:0000:0000:0000:0001'), { ok: true, value: '2001:db8::1' });
    assert.deepEqual(checkAddress('FD00:0:0:1::A'), { ok: true, value: 'fd00:0:0:1::a' });
    assert.deepEqual(checkAddress('::1'), { ok: true, value: '::1' });
    const mapped = checkAddress('::ffff:192.0.2.7');
    assert.ok(!mapped.ok && mapped.error.code === 'bad-address');
    assert.match(mapped.error.message, /IPv4-mapped.*give the IPv4 address 192\.0\.2\.7$/);
    const ll = checkAddress('fe80::1');
    assert.ok(!ll.ok);
    assert.match(ll.error.message, /link-local/);
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
  it('IPv6 prefixes are canonicalised (case, leading zeros, zero compression); host bits set are refused with the prefix meant', () => {
    const r = checkPrefixes([
      '2001:DB8:0:0::/48',
      '2001:0db8:0001:0000::/64',
      'FD00::/8',
      '::/0',
      '2001:db8::1/128',
      '2001:db8::1',
    ]);
    assert.ok(r.ok);
    assert.deepEqual(r.value.map(String), [
      '2001:db8::/48',
      '2001:db8:1::/64',
      'fd00::/8',
      '::/0',
      '2001:db8::1/128',
      '2001:db8::1/128',
    ]);
    const bits = checkPrefixes(['2001:db8:1::/32']);
    assert.ok(!bits.ok && bits.error.code === 'bad-cidr');
    assert.match(bits.error.message, /host bits set \(did you mean 2001:db8::\/32\?\)/);
    for (const bad of [
      '2001:db8::/129',
      '2001:db8::/-1',
      '2001:db8::/',
      '2001:db8:::/48',
      '2001:db8::g/64',
      'fe80::1%eth0/64',
      '[2001:db8::]/48',
    ]) {
      const x = checkPrefixes([bad]);
      assert.ok(!x.ok && x.error.code === 'bad-cidr', bad);
    }
  });
  it('IPv4-mapped IPv6 prefixes are refused with the IPv4 prefix to give; link-local and multicast ones too', () => {
    const mapped = checkPrefixes(['::ffff:10.1.0.0/112']);
    assert.ok(!mapped.ok && mapped.error.code === 'bad-cidr');
    assert.match(mapped.error.message, /IPv4-mapped.*give the IPv4 prefix 10\.1\.0\.0\/16$/);
    const host = checkPrefixes(['::FFFF:A01:203']);
    assert.ok(!host.ok);
    assert.match(host.error.message, /give the IPv4 prefix 10\.1\.2\.3\/32$/);
    for (const [bad, why] of [
      ['fe80::/64', /link-local/],
      ['fe80::/10', /link-local/],
      ['ff02::/16', /multicast/],
      ['ff00::/8', /multicast/],
    ] as const) {
      const x = checkPrefixes([bad]);
      assert.ok(!x.ok && x.error.code === 'bad-cidr', bad);
      assert.match(x.error.message, why);
    }
    // Prefixes that merely contain those ranges are ordinary (::/0 is "every IPv6 address").
    assert.ok(checkPrefixes(['::/0', '::/64', 'fe00::/7', '::/80']).ok);
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
  it('IPv6: the same rule, across memberships, within one, and beside IPv4 (dual stack)', () => {
    const v6 = new Map<string, Prefix[]>([
      ['outer', [P('2001:db8::/32'), P('10.0.0.0/8')]],
      ['g2', [P('fd00:2::/48')]],
    ]);
    const amb = checkMembershipAdd('corp', v6, 'inner', [P('2001:db8:1:1::/64')]);
    assert.ok(!amb.ok && amb.error.code === 'ambiguous-prefix');
    assert.match(amb.error.message, /2001:db8:1:1::\/64 overlaps 2001:db8::\/32, which gateway outer/);
    const own = checkMembershipAdd('corp', v6, 'g2', [P('fd00:2:0:8000::/49')]);
    assert.ok(!own.ok && own.error.code === 'overlapping-prefixes');
    const twice = checkMembershipAdd('corp', v6, 'g3', [P('fd00:3::/48'), P('fd00:3::/64')]);
    assert.ok(!twice.ok && twice.error.code === 'overlapping-prefixes');
    assert.deepEqual(checkMembershipAdd('corp', v6, 'g2', [P('fd00:2::/48')]), { ok: true, value: [] });
    // The neighbouring /48 is disjoint; a v4 and a v6 prefix in one membership never overlap.
    const dual = checkMembershipAdd('corp', v6, 'g3', [P('fd00:3::/48'), P('192.168.3.0/24'), P('2001:db9::/32')]);
    assert.ok(dual.ok);
    assert.deepEqual(dual.value.map(String), ['fd00:3::/48', '192.168.3.0/24', '2001:db9::/32']);
    // ::/0 overlaps every IPv6 prefix but no IPv4 one.
    const all6 = checkMembershipAdd('corp', new Map([['g2', [P('10.2.0.0/16')]]]), 'g4', [P('::/0')]);
    assert.ok(all6.ok);
    assert.ok(!checkMembershipAdd('corp', v6, 'g4', [P('::/0')]).ok);
  });
  it('nested VPNs are a per-VPN matter: the check only ever sees one VPN', () => {
    // The inner gateway's department VPN has only itself; the company VPN has only the outer one.
    assert.ok(checkMembershipAdd('dept', new Map(), 'inner', [P('10.1.1.0/24')]).ok);
  });
  const v4Prefix = fc
    .tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 8, max: 24 }))
    .map(([a, b, len]) => Prefix.of(`10.${a}.${b}.0`, len));
  const v6Prefix = fc
    .tuple(fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 16, max: 64 }))
    .map(([a, b, len]) => Prefix.of(`2001:db8:${a.toString(16)}:${b.toString(16)}::`, len));
  for (const [family, prefix] of [
    ['IPv4', v4Prefix],
    ['IPv6', v6Prefix],
    ['dual stack', fc.oneof(v4Prefix, v6Prefix)],
  ] as const)
    it(`property (${family}): accepting changes one by one keeps every VPN unambiguous`, () => {
      fc.assert(
        fc.property(
          fc.array(fc.tuple(fc.constantFrom('g1', 'g2', 'g3'), fc.array(prefix, { minLength: 1, maxLength: 3 })), {
            maxLength: 25,
          }),
          (changes) => {
            const state = new Map<string, Prefix[]>();
            for (const [g, add] of changes) {
              const r = checkMembershipAdd('v', state, g, add);
              if (r.ok) state.set(g, [...(state.get(g) ?? []), ...r.value]);
            }
            const all = [...state].flatMap(([g, ps]) => ps.map((p) => ({ g, p })));
            for (let i = 0; i < all.length; i++)
              for (let j = i + 1; j < all.length; j++)
                assert.ok(!all[i].p.overlaps(all[j].p), `${all[i].g} ${all[i].p} vs ${all[j].g} ${all[j].p}`);
          },
        ),
      );
    });
});

describe('the directory of protected prefixes', () => {
  it('compacts to the covering prefixes, keeping families apart', () => {
    assert.deepEqual(
      compactPrefixes([
        P('10.1.0.0/16'),
        P('10.0.0.0/8'),
        P('10.0.0.0/8'),
        P('192.168.0.0/24'),
        P('fd00::/8'),
        P('fd00:1::/32'),
      ]).map(String),
      ['10.0.0.0/8', '192.168.0.0/24', 'fd00::/8'],
    );
  });
  it('merges the two halves of a prefix, repeatedly', () => {
    assert.deepEqual(
      compactPrefixes([P('10.0.0.0/24'), P('10.0.1.0/24'), P('10.0.2.0/23'), P('10.0.4.0/24')]).map(String),
      ['10.0.0.0/22', '10.0.4.0/24'],
    );
    const many = Array.from({ length: 1024 }, (_, i) => Prefix.of(`10.${i >> 8}.${i & 255}.0`, 24));
    assert.deepEqual(compactPrefixes(many).map(String), ['10.0.0.0/14']);
    assert.deepEqual(compactPrefixes([P('0.0.0.0/1'), P('128.0.0.0/1')]).map(String), ['0.0.0.0/0']);
  });
  it('property: every address covered before compaction is covered after', () => {
    const prefix = fc
      .tuple(fc.integer({ min: 0, max: 15 }), fc.integer({ min: 0, max: 15 }), fc.integer({ min: 0, max: 32 }))
      .map(([a, b, len]) => Prefix.of(`10.${a}.${b}.0`, len));
    fc.assert(
      fc.property(
        fc.array(prefix, { maxLength: 30 }),
        fc.integer({ min: 0, max: 15 }),
        fc.integer({ min: 0, max: 15 }),
        fc.integer({ min: 0, max: 255 }),
        (ps, a, b, h) => {
          const ip = `10.${a}.${b}.${h}`;
          const c = compactPrefixes(ps);
          assert.equal(
            c.some((p) => p.contains(ip)),
            ps.some((p) => p.contains(ip)),
          );
          for (let i = 0; i < c.length; i++) for (let j = i + 1; j < c.length; j++) assert.ok(!c[i].overlaps(c[j]));
        },
      ),
    );
  });
  it('IPv6: drops covered prefixes, merges halves up to ::/0, never merges across families', () => {
    assert.deepEqual(
      compactPrefixes([P('2001:db8::/33'), P('2001:db8:8000::/33'), P('2001:db8:1::/48'), P('10.0.0.0/8')]).map(String),
      ['10.0.0.0/8', '2001:db8::/32'],
    );
    assert.deepEqual(compactPrefixes([P('::/1'), P('8000::/1'), P('0.0.0.0/1')]).map(String), ['0.0.0.0/1', '::/0']);
    const many = Array.from({ length: 256 }, (_, i) => Prefix.of(`fd00:0:0:${i.toString(16)}::`, 64));
    assert.deepEqual(compactPrefixes(many).map(String), ['fd00::/56']);
  });
  it('property (IPv6): every address covered before compaction is covered after', () => {
    const group = fc.integer({ min: 0, max: 3 }).map((g) => (g * 0x4000).toString(16));
    const prefix = fc
      .tuple(group, group, fc.integer({ min: 0, max: 128 }))
      .map(([a, b, len]) => Prefix.of(`fd00:${a}:${b}::`, len));
    fc.assert(
      fc.property(
        fc.array(prefix, { maxLength: 30 }),
        group,
        group,
        fc.integer({ min: 0, max: 0xffff }),
        (ps, a, b, h) => {
          const ip = `fd00:${a}:${b}::${h.toString(16)}`;
          const c = compactPrefixes(ps);
          assert.equal(
            c.some((p) => p.contains(ip)),
            ps.some((p) => p.contains(ip)),
          );
          for (let i = 0; i < c.length; i++) for (let j = i + 1; j < c.length; j++) assert.ok(!c[i].overlaps(c[j]));
        },
      ),
    );
  });
});
