// Policy routing on a real kernel (in a network namespace): start is idempotent over whatever an
// earlier run left (issue 10 point 2), the refusing routes outlive the TUN devices (point 1), and
// teardown removes everything, as often as it is run. IPv4 and IPv6 alike.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Testbed } from '../../src/testbed/netns.js';
import type { TunRouting } from '../../src/native/routing.js';
import { netnsTest } from '../support/netns-gate.js';

const HELPER = join(new URL('.', import.meta.url).pathname, 'routing-helper.ts');

netnsTest(
  'routing: setup over a killed run of another configuration, twice; refusing routes outlive the TUN devices; teardown',
  { timeout: 60_000, needs: ['nft'] },
  () => {
    const tb = new Testbed();
    try {
      const ns = tb.ns('route');
      for (const i of ['lan0', 'lan1', 'wan0']) tb.ip(ns, 'link', 'add', i, 'type', 'veth', 'peer', 'name', `${i}p`);
      for (const t of ['ks-in', 'ks-out']) tb.ip(ns, 'tuntap', 'add', 'mode', 'tun', 'name', t);
      const plan: TunRouting = {
        insideTun: 'ks-in',
        outsideTun: 'ks-out',
        insideIfaces: ['lan0'],
        outsideIfaces: ['wan0'],
        table: 200,
        pref: 300,
      };
      const run = (what: 'setup' | 'teardown', p: TunRouting = plan) =>
        JSON.parse(tb.exec(ns, process.execPath, '--import', 'tsx', HELPER, what, JSON.stringify(p))) as {
          ok: boolean;
          message?: string;
        };
      const rulesOf = (f: 4 | 6) =>
        (
          JSON.parse(tb.ip(ns, '-j', '-N', `-${f}`, 'rule', 'show')) as {
            priority: number;
            iif?: string;
            table: string;
          }[]
        )
          .filter((r) => r.priority === 300 || r.priority === 301)
          .map((r) => `${r.priority} ${r.iif ?? '-'} ${r.table}`)
          .sort();
      const rules = () => {
        const [v4, v6] = [rulesOf(4), rulesOf(6)];
        assert.deepEqual(v6, v4, 'the IPv6 rules are the IPv4 ones');
        return v4;
      };
      const table = (n: number) => tb.ip(ns, 'route', 'show', 'table', String(n)).trim();
      // IPv6 routes carry a "pref medium" of their own: the route itself is what counts.
      const table6 = (n: number) =>
        tb.ip(ns, '-6', 'route', 'show', 'table', String(n)).replaceAll(' pref medium', '').trim();
      const nft = () => tb.exec(ns, 'nft', 'list', 'ruleset');

      // What a killed gateway of an earlier configuration (inside lan0 and lan1) leaves.
      assert.deepEqual(run('setup', { ...plan, insideIfaces: ['lan0', 'lan1'] }), { ok: true });
      // and rules at our preference with selectors of their own
      tb.ip(ns, 'rule', 'add', 'fwmark', '7', 'lookup', '200', 'pref', '300');
      tb.ip(ns, '-6', 'rule', 'add', 'fwmark', '7', 'lookup', '200', 'pref', '300');
      // and the IPv4-only guard an earlier version made (family ip): the new one replaces it
      tb.exec(ns, 'nft', 'add table ip kasane_200');
      assert.deepEqual(rules(), ['300 - 200', '300 lan0 200', '300 lan1 200', '301 wan0 201']);

      // The first start with the new configuration succeeds and leaves exactly its own state; so does a second.
      for (const attempt of [1, 2]) {
        assert.deepEqual(run('setup'), { ok: true }, `setup ${attempt}`);
        assert.deepEqual(rules(), ['300 lan0 200', '301 wan0 201'], `rules after setup ${attempt}`);
        assert.match(table(200), /^default dev ks-in/m);
        assert.match(table(200), /^prohibit default metric 4294967295/m);
        assert.match(table(201), /^default dev ks-out/m);
        assert.match(table(201), /^blackhole default metric 4294967295/m);
        assert.match(table6(200), /^default dev ks-in/m);
        assert.match(table6(200), /^prohibit default dev lo metric 4294967295/m);
        assert.match(table6(201), /^default dev ks-out/m);
        assert.match(table6(201), /^blackhole default dev lo metric 4294967295/m);
        const guard = nft();
        assert.equal(guard.match(/table inet kasane_200/g)?.length, 1, guard);
        assert.doesNotMatch(guard, /table ip kasane_200/, 'the IPv4-only guard of an earlier version is replaced');
        assert.match(guard, /iifname "lan0" oifname "wan0" counter packets \d+ bytes \d+ drop/);
        assert.match(guard, /iifname "wan0" oifname "lan0" counter packets \d+ bytes \d+ drop/);
        assert.doesNotMatch(guard, /lan1/, "the earlier configuration's interface is gone from the guard");
        assert.equal(tb.exec(ns, 'cat', '/proc/sys/net/ipv4/ip_forward').trim(), '1');
        assert.equal(tb.exec(ns, 'cat', '/proc/sys/net/ipv6/conf/all/forwarding').trim(), '1');
        // The TUN devices carry IPv6 but have no address of their own (no DAD, RS or MLD of the kernel's).
        assert.equal(tb.ip(ns, '-6', 'addr', 'show', 'dev', 'ks-in').trim(), '');
      }

      // The TUN devices vanish (the process died): their routes go, the refusing ones and the rules stay.
      for (const t of ['ks-in', 'ks-out']) tb.ip(ns, 'link', 'del', t);
      assert.equal(table(200), 'prohibit default metric 4294967295');
      assert.equal(table(201), 'blackhole default metric 4294967295');
      assert.equal(table6(200), 'prohibit default dev lo metric 4294967295');
      assert.equal(table6(201), 'blackhole default dev lo metric 4294967295');
      assert.deepEqual(rules(), ['300 lan0 200', '301 wan0 201']);

      // Teardown, twice: nothing of the gateway left.
      for (const attempt of [1, 2]) {
        assert.deepEqual(run('teardown'), { ok: true }, `teardown ${attempt}`);
        assert.deepEqual(rules(), []);
        assert.equal(table(200), '');
        assert.equal(table(201), '');
        assert.equal(table6(200), '');
        assert.equal(table6(201), '');
        assert.doesNotMatch(nft(), /kasane/);
      }
    } finally {
      tb.teardown();
    }
  },
);
