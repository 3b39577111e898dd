// The policy-routing plan that steers each side's traffic into its TUN device.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { routingSetup, routingTeardown, type RoutingCommand } from '../../src/native/routing.js';

const plan = { insideTun: 'ks-in', outsideTun: 'ks-out', insideIfaces: ['lan0', 'lan1'], outsideIfaces: ['wan0'], table: 200, pref: 300 };
const text = (cs: RoutingCommand[]) => cs.map((c) => ('sysctl' in c ? `${c.sysctl}=${c.value}` : c.argv.join(' ')) + (c.optional ? ' (optional)' : ''));

describe('TUN routing plan', () => {
  it('routes each inside/outside interface into its own TUN, and turns off what would drop written packets', () => {
    const s = text(routingSetup(plan));
    for (const line of [
      'net.ipv4.ip_forward=1',
      'net.ipv4.conf.all.rp_filter=0',
      'net.ipv4.conf.ks-in.rp_filter=0',
      'net.ipv4.conf.ks-out.rp_filter=0',
      'net.ipv6.conf.ks-in.disable_ipv6=1 (optional)',
      'ip link set ks-in up',
      'ip route replace default dev ks-in table 200',
      'ip route replace default dev ks-out table 201',
      'ip rule add iif lan0 lookup 200 pref 300',
      'ip rule add iif lan1 lookup 200 pref 300',
      'ip rule add iif wan0 lookup 201 pref 301',
    ])
      assert.ok(s.includes(line), `missing: ${line}\n${s.join('\n')}`);
    // No rule matches what the datapath writes back (iif = a TUN device).
    assert.ok(!s.some((l) => /iif ks-/.test(l)));
  });

  it('teardown removes every rule it added and flushes both tables, failures tolerated', () => {
    const added = text(routingSetup(plan)).filter((l) => l.startsWith('ip rule add'));
    const t = text(routingTeardown(plan));
    for (const a of added) assert.ok(t.includes(a.replace('ip rule add', 'ip rule del') + ' (optional)'), a);
    assert.ok(t.includes('ip route flush table 200 (optional)') && t.includes('ip route flush table 201 (optional)'));
  });
});
