// The native executor's path rules (native/src/table.c: IPv4 in an open-addressed table whose
// records move on insert and remove, IPv6 chained) against a Map: every rule keeps its action and
// its counters whatever is installed or removed around it.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { PathAction, PathStats } from '../../src/core/executor.js';
import { newExecutor, ping } from './support.js';

const ACTIONS: PathAction[] = ['plain', 'discard', 'pending', 'encrypt'];
type Rule = { local: string; remote: string; action: PathAction };
const v4 = (n: number) => `10.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;

describe('native path rules', () => {
  it('behave as a Map under random installs, replacements and removals (IPv4 and IPv6)', (t) => {
    if (!newExecutor(t)) return;
    const four = fc.constantFrom('10.0.0.1', '10.0.0.2', '10.0.1.1', '192.168.0.9');
    const six = fc.constantFrom('2001:db8::1', '2001:db8::2', 'fd00::9');
    const ends = fc.oneof(fc.tuple(four, four), fc.tuple(six, six));
    const op = fc.record({ remove: fc.boolean(), ends, action: fc.constantFrom(...ACTIONS) });
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        const ex = newExecutor(t);
        assert.ok(ex);
        const model = new Map<string, Rule>();
        for (const { remove, ends, action } of ops) {
          const o = { remove, local: ends[0], remote: ends[1], action };
          const key = `${o.local}>${o.remote}`;
          if (o.remove) {
            ex.removePath(o.local, o.remote);
            model.delete(key);
          } else {
            ex.installPath({ local: o.local, remote: o.remote, action: o.action, vpnId: 1, peer: 'G2', mtu: 1400 });
            model.set(key, { local: o.local, remote: o.remote, action: o.action });
          }
          const held: Rule[] = ex.allPathStats().map((s) => ({ local: s.local, remote: s.remote, action: s.action }));
          const order = (a: Rule, b: Rule) => `${a.local}>${a.remote}`.localeCompare(`${b.local}>${b.remote}`);
          assert.deepStrictEqual(held.sort(order), [...model.values()].sort(order));
        }
      }),
      { numRuns: 100 },
    );
  });

  it('keep every rule and its counters through growth and removal of many others', (t) => {
    const ex = newExecutor(t);
    if (!ex) return;
    const n = 20_000;
    const local = (i: number) => v4(i >>> 3);
    const remote = (i: number) => v4(0x800000 + i);
    for (let i = 0; i < n; i++)
      ex.installPath({ local: local(i), remote: remote(i), action: i % 3 ? 'plain' : 'discard' });
    // i packets on path i (for a few), so that a record moved to another place shows it.
    for (let i = 1; i < n; i += 997)
      for (let k = 0; k < i % 5; k++) ex.process('inside', ping(local(i), remote(i), k), 1000 + i);
    for (let i = 0; i < n; i += 2) ex.removePath(local(i), remote(i));
    assert.equal(ex.allPathStats().length, n / 2);
    for (let i = 0; i < n; i++) {
      const s: PathStats | undefined = ex.pathStats(local(i), remote(i));
      if (i % 2 === 0) assert.equal(s, undefined, `path ${i} removed`);
      else {
        const sent = (i - 1) % 997 === 0 ? i % 5 : 0;
        assert.equal(s?.packets, sent, `path ${i}`);
        if (sent) assert.equal(s?.lastUsed, 1000 + i);
      }
    }
    const kept = new Map(ex.allPathStats().map((s) => [`${s.local}>${s.remote}`, s.action]));
    for (let i = 1; i < n; i += 2) assert.equal(kept.get(`${local(i)}>${remote(i)}`), i % 3 ? 'plain' : 'discard');
  });
});
