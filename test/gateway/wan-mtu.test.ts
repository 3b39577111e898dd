// The gateway's path MTU from its outside interfaces (src/gateway/wan-mtu.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { interfacesMtu, kernelPathMtu, wanPathMtu } from '../../src/gateway/wan-mtu.js';
import { nativeOrSkip } from '../native/support.js';
import { parseGatewayConfig } from '../../src/gateway/config.js';

const sysfs =
  (mtus: Record<string, string>, ipv6: Record<string, string> = {}) =>
  (path: string) => {
    const m = /^\/sys\/class\/net\/(.+)\/mtu$/.exec(path);
    const m6 = /^\/proc\/sys\/net\/ipv6\/conf\/(.+)\/mtu$/.exec(path);
    const v = m ? mtus[m[1]] : m6 ? ipv6[m6[1]] : undefined;
    if (v === undefined) throw new Error(`ENOENT ${path}`);
    return v;
  };

test('the smallest outside interface decides; a configured pathMtu only lowers it; unreadable interfaces are skipped', () => {
  const read = sysfs({ wan0: '1500\n', wan1: '1280\n', bad: 'x' });
  assert.equal(interfacesMtu(['wan0', 'wan1'], read), 1280);
  assert.equal(interfacesMtu(['wan0', 'gone', 'bad'], read), 1500);
  assert.equal(interfacesMtu(['gone'], read), undefined);
  assert.equal(wanPathMtu(undefined, ['wan0', 'wan1'], read), 1280);
  assert.equal(wanPathMtu(1400, ['wan0'], read), 1400);
  assert.equal(wanPathMtu(1500, ['wan1'], read), 1280);
  assert.equal(wanPathMtu(undefined, ['gone'], read), 1500, 'nothing readable: the IPv4 Ethernet default');
});

test("an outside interface's IPv6 MTU below its link MTU (a router advertisement's MTU option) lowers the path MTU", () => {
  const read = sysfs(
    { wan0: '1500\n', wan1: '1500\n', gone6: '1400\n' },
    { wan0: '1500\n', wan1: '1420\n', bogus: '1000\n' },
  );
  assert.equal(interfacesMtu(['wan0'], read), 1500);
  assert.equal(interfacesMtu(['wan0', 'wan1'], read), 1420);
  assert.equal(interfacesMtu(['gone6'], read), 1400, 'no IPv6 on the interface: its link MTU');
  assert.equal(wanPathMtu(1300, ['wan1'], read), 1300);
});

test('pathMtu is optional in the configuration; when given it must be 576..65535', () => {
  const base = { data: '/d', inside: ['lan0'], outside: ['wan0'] };
  const r = parseGatewayConfig(base);
  assert.ok(r.ok && r.value.pathMtu === undefined);
  const set = parseGatewayConfig({ ...base, pathMtu: 1400 });
  assert.ok(set.ok && set.value.pathMtu === 1400);
  assert.ok(!parseGatewayConfig({ ...base, pathMtu: 100 }).ok);
});

test("the kernel's path MTU toward an address, read through the native addon (loopback here)", (t) => {
  const b = nativeOrSkip(t);
  if (!b) return;
  // IPv4 routes top out at 65535 (loopback says 65536).
  assert.equal(
    kernelPathMtu(b, '127.0.0.1'),
    Math.min(65535, Number(readFileSync('/sys/class/net/lo/mtu', 'utf8').trim())),
  );
  // A pairwise peer's outside address may be IPv6 (a v4-only reader threw in the daemon's timer).
  if (existsSync('/proc/sys/net/ipv6/conf/lo/mtu'))
    assert.equal(kernelPathMtu(b, '::1'), Number(readFileSync('/proc/sys/net/ipv6/conf/lo/mtu', 'utf8').trim()));
});
