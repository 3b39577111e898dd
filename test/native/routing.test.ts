// The policy-routing plan that steers each side's traffic into its TUN device, and fails closed.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { routingSetup, routingTeardown, sysctlPath, type RoutingCommand } from '../../src/native/routing.js';

const plan = {
  insideTun: 'ks-in',
  outsideTun: 'ks-out',
  insideIfaces: ['lan0', 'lan1'],
  outsideIfaces: ['wan0'],
  table: 200,
  pref: 300,
};
const text = (cs: RoutingCommand[]) =>
  cs.map(
    (c) =>
      ('sysctl' in c
        ? `${c.sysctl}=${c.value}`
        : 'rules' in c
          ? `ip -${c.family} rules at ${c.prefs.join('/')}: ${c.rules.map((r) => `iif ${r.iif} lookup ${r.table} pref ${r.pref}`).join(', ') || 'none'}`
          : 'nft' in c
            ? `nft: ${c.nft}`
            : c.argv.join(' ')) + (c.optional ? ' (optional)' : ''),
  );

describe('TUN routing plan', () => {
  it('routes each inside/outside interface into its own TUN, and turns off what would drop written packets', () => {
    const s = text(routingSetup(plan));
    for (const line of [
      'net.ipv4.ip_forward=1',
      'net.ipv4.conf.all.rp_filter=0',
      'net.ipv4.conf.ks-in.rp_filter=0',
      'net.ipv4.conf.ks-out.rp_filter=0',
      'net.ipv6.conf.all.forwarding=1',
      'net.ipv6.conf.ks-in.disable_ipv6=0',
      'ip link set ks-in addrgenmode none',
      'ip link set ks-in up',
      'ip -4 route replace default dev ks-in table 200',
      'ip -4 route replace default dev ks-out table 201',
      'ip -6 route replace default dev ks-in table 200',
      'ip -6 route replace default dev ks-out table 201',
      'ip -4 rules at 300/301: iif lan0 lookup 200 pref 300, iif lan1 lookup 200 pref 300, iif wan0 lookup 201 pref 301',
      'ip -6 rules at 300/301: iif lan0 lookup 200 pref 300, iif lan1 lookup 200 pref 300, iif wan0 lookup 201 pref 301',
    ])
      assert.ok(s.includes(line), `missing: ${line}\n${s.join('\n')}`);
    // No rule matches what the datapath writes back (iif = a TUN device).
    assert.ok(!s.some((l) => /iif ks-/.test(l)));
  });

  it('fails closed: refusing routes behind the TUN routes and the forwarding guard come first', () => {
    const s = text(routingSetup(plan));
    const guard = s.findIndex((l) => l.startsWith('nft: '));
    // Before the TUN routes and the rules: no moment where a rule points at a table without them.
    const firstTunRoute = s.findIndex((l) => /route replace default dev/.test(l));
    const rules = s.findIndex((l) => /rules at/.test(l));
    for (const f of [4, 6]) {
      const prohibit = s.indexOf(`ip -${f} route replace prohibit default metric 4294967295 table 200`);
      const blackhole = s.indexOf(`ip -${f} route replace blackhole default metric 4294967295 table 201`);
      assert.ok(prohibit >= 0 && blackhole >= 0 && guard >= 0, s.join('\n'));
      assert.ok(Math.max(prohibit, blackhole, guard) < Math.min(firstTunRoute, rules), s.join('\n'));
    }
    const nft = s[guard];
    // Replaced atomically (created if absent, deleted and made again in one `nft -f`); one inet
    // table guards IPv4 and IPv6, and the ip table of an earlier (IPv4-only) version goes with it.
    assert.match(
      nft,
      /^nft: table ip kasane_200 \{\}\ndelete table ip kasane_200\ntable inet kasane_200 \{\}\ndelete table inet kasane_200\ntable inet kasane_200 \{/,
    );
    assert.match(nft, /iifname \{ "lan0", "lan1" \} oifname \{ "wan0" \} counter drop/);
    assert.match(nft, /iifname \{ "wan0" \} oifname \{ "lan0", "lan1" \} counter drop/);
  });

  it('teardown removes every rule at its preferences, both tables and the guard', () => {
    const t = text(routingTeardown(plan));
    assert.deepEqual(t, [
      'ip -4 rules at 300/301: none',
      'ip -4 route flush table 200 (optional)',
      'ip -4 route flush table 201 (optional)',
      'ip -6 rules at 300/301: none',
      'ip -6 route flush table 200 (optional)',
      'ip -6 route flush table 201 (optional)',
      'nft: table ip kasane_200 {}\ndelete table ip kasane_200\ntable inet kasane_200 {}\ndelete table inet kasane_200\n',
    ]);
  });

  it('on a host without IPv6 the plan is IPv4 only, and keeps IPv6 off the TUN devices', () => {
    const s = text(routingSetup({ ...plan, ipv6: false }));
    assert.ok(
      !s.some((l) => l.startsWith('ip -6') || l.includes('forwarding') || l.includes('addrgenmode')),
      s.join('\n'),
    );
    assert.ok(s.includes('net.ipv6.conf.ks-in.disable_ipv6=1 (optional)'), s.join('\n'));
    assert.ok(!text(routingTeardown({ ...plan, ipv6: false })).some((l) => l.startsWith('ip -6')));
  });

  it('keeps router advertisements working on an outside interface that uses them (accept_ra 1 -> 2 only)', () => {
    const step = routingSetup(plan).find((c) => 'sysctl' in c && c.sysctl === 'net.ipv6.conf.wan0.accept_ra');
    assert.deepEqual(step, { sysctl: 'net.ipv6.conf.wan0.accept_ra', value: '2', ifValue: '1' });
  });

  it('writes per-interface sysctls of interfaces whose names have dots (VLANs) under their own name', () => {
    assert.equal(sysctlPath('net.ipv6.conf.wan0.100.accept_ra'), '/proc/sys/net/ipv6/conf/wan0.100/accept_ra');
    assert.equal(sysctlPath('net.ipv4.ip_forward'), '/proc/sys/net/ipv4/ip_forward');
  });
});
