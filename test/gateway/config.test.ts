// The gateway's YAML configuration: what it accepts, and a clear message for each mistake.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parse } from 'yaml';
import { parseGatewayConfig } from '../../src/gateway/config.js';

const parseText = (text: string) => parseGatewayConfig(parse(text), 'g.yaml');

/** `text` is refused with one message that names each of `mistakes`. */
function assertRefusedNaming(text: string, mistakes: string[]): void {
  const r = parseText(text);
  assert.equal(r.ok, false);
  const m = r.ok ? '' : r.error.message;
  for (const expected of mistakes) assert.ok(m.includes(expected), `missing "${expected}" in: ${m}`);
}

test('gateway config: a full configuration parses, with defaults for what is left out', () => {
  const r = parseText(`
data: /var/lib/kasane/g1
inside: [lan0]
outside: [wan0]
allowPlain: [10.200.9.0/24]
metrics: { listen: 127.0.0.1:9108 }
timers: { idleTimeout: 3000, sweepInterval: 250 }
limits: { maxPaths: 1000 }
rawEspVpns: [7, 9]
`);
  assert.ok(r.ok, r.ok ? '' : r.error.message);
  assert.equal(r.value.data, '/var/lib/kasane/g1');
  assert.deepEqual(r.value.rawEspVpns, [7, 9]);
  assert.deepEqual(r.value.tun, {
    inside: 'kasane-in',
    outside: 'kasane-out',
    queues: 1,
  });
  const q = parseText('data: /d\ninside: [lan0]\noutside: [wan0]\ntun: { queues: 3 }\n');
  assert.ok(q.ok && q.value.tun.queues === 3 && q.value.tun.inside === 'kasane-in');
  for (const bad of ['0', '9', '1.5', 'two']) {
    const b = parseText(`data: /d\ninside: [lan0]\noutside: [wan0]\ntun: { queues: ${bad} }\n`);
    assert.ok(!b.ok && /tun\.queues/.test(b.error.message), `queues ${bad}: ${b.ok ? 'accepted' : b.error.message}`);
  }
  assert.deepEqual(r.value.timers, { idleTimeout: 3000, sweepInterval: 250 });
  assert.deepEqual(r.value.metrics, { host: '127.0.0.1', port: 9108 });
  assert.equal(r.value.allowPlain.map(String).join(), '10.200.9.0/24');
  assert.equal(r.value.authorityPush, true, 'the wake-up channel unless turned off');
  const off = parseText('data: /d\ninside: [lan0]\noutside: [wan0]\nauthorityPush: false\n');
  assert.ok(off.ok && off.value.authorityPush === false);
});

test('gateway config: each mistake is named, all of them at once', () => {
  const text = `
inside: [lan0]
outside: [lan0, "bad name!"]
timers: { idleTimout: 3000, searchTimeout: -1 }
limits: { maxPath: 5 }
allowPlain: [10.0.0.0/33]
metrics: { listen: nowhere }
colour: blue
rawEspVpns: [0, x]
authorityPush: no
`;
  assertRefusedNaming(text, [
    'g.yaml: colour: unknown field "colour"',
    'g.yaml: (top level): missing field "data" (the data directory with the enrollment credentials)',
    'g.yaml: outside[0]: interface lan0 cannot be both inside and outside',
    'g.yaml: outside[1]: "bad name!" is not an interface name',
    'g.yaml: timers.searchTimeout: must be at least 0, got -1',
    'g.yaml: limits.maxPath: unknown field "maxPath"',
    'g.yaml: allowPlain[0]: bad prefix length',
    'g.yaml: metrics.listen: must be host:port',
    'g.yaml: rawEspVpns[0]: expected an integer from 1 to 4294967295, got 0',
    'g.yaml: rawEspVpns[1]: expected an integer from 1 to 4294967295, got "x"',
    'g.yaml: authorityPush:',
  ]);
});

test('gateway config: a misspelt timer is refused rather than silently ignored', () => {
  const r = parseText('data: /d\ninside: [a]\noutside: [b]\ntimers: { idleTimout: 3000 }\n');
  assert.equal(r.ok, false);
  assert.match(
    r.ok ? '' : r.error.message,
    /timers\.idleTimout: unknown field "idleTimout"; expected one of: .*idleTimeout/,
  );
});

test('gateway config: not a mapping', () => {
  for (const doc of ['- a\n- b\n', '42\n', '']) {
    const r = parseText(doc);
    assert.equal(r.ok, false, doc);
    assert.match(
      r.ok ? '' : r.error.message,
      /^g\.yaml: \(top level\): expected a mapping \(key: value\), got (a list|number 42|nothing)$/,
    );
  }
});

test('gateway config: the ike section (ports, idle timeout, engine timers), with defaults and named mistakes', () => {
  const d = parseText('data: /d\ninside: [lan0]\noutside: [wan0]\n');
  assert.ok(d.ok);
  assert.deepEqual(d.value.ike, { port: 500, natPort: 4500, idleTimeout: 300_000, timers: {} });
  const r = parseText(
    'data: /d\ninside: [lan0]\noutside: [wan0]\nike: { port: 1500, natPort: 14500, idleTimeout: 60000, childLifetime: 1800000, dpdDelay: 10000 }\n',
  );
  assert.ok(r.ok, r.ok ? '' : r.error.message);
  assert.deepEqual(r.value.ike, {
    port: 1500,
    natPort: 14500,
    idleTimeout: 60_000,
    timers: { childLifetime: 1_800_000, dpdDelay: 10_000 },
  });
  assertRefusedNaming(
    'data: /d\ninside: [lan0]\noutside: [wan0]\nike: { port: 4500, natPort: 4500, childLifetme: 5, idleTimeout: 10 }\n',
    [
      'ike.childLifetme: unknown field "childLifetme"',
      'ike: ike.port and ike.natPort must differ',
      'ike.idleTimeout: must be at least 1000 ms',
    ],
  );
});

test('gateway config file: an alias bomb, an oversized file and unparsable nesting are refused with where and why', async () => {
  const { mkdtempSync, rmSync, writeFileSync, truncateSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { loadGatewayConfig, GATEWAY_CONFIG_LIMITS } = await import('../../src/gateway/config.js');
  const dir = mkdtempSync(join(tmpdir(), 'kasane-gwcfg-'));
  try {
    const file = join(dir, 'g.yaml');
    const { aliasBomb } = await import('../support/files.js');
    writeFileSync(file, `data: /var/lib/kasane/g1\ninside: [lan0]\noutside: [wan0]\n${aliasBomb(8, 'logLevel')}`);
    const b = loadGatewayConfig(file);
    assert.ok(!b.ok);
    assert.match(b.error.message, /g\.yaml:8:\d+: x4\[0\]: alias \*a3 stands for 11111 nodes/);
    truncateSync(file, GATEWAY_CONFIG_LIMITS.maxYamlBytes + 1);
    const big = loadGatewayConfig(file);
    assert.ok(!big.ok);
    assert.match(big.error.message, /gateway configuration files are limited to 1\.0 MiB/);
    writeFileSync(file, `data: ${'['.repeat(100_000)}`);
    const deep = loadGatewayConfig(file);
    assert.ok(!deep.ok);
    assert.match(deep.error.message, /\(syntax\)/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('gateway config file: each mistake with its line and field; a log level pino does not know and a misspelt tun name are refused', async () => {
  const { mkdtempSync, rmSync, writeFileSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { loadGatewayConfig } = await import('../../src/gateway/config.js');
  const dir = mkdtempSync(join(tmpdir(), 'kasane-gwcfg-'));
  try {
    const file = join(dir, 'g.yaml');
    writeFileSync(
      file,
      'data: /d\ninside: [lan0]\noutside: [wan0]\npathMTU: 1400\nlogLevel: verbose\ntun: { insde: tun9 }\nallowPlain: [fd00::/8, 10.0.0.1/8]\n',
    );
    const r = loadGatewayConfig(file);
    assert.ok(!r.ok);
    assert.deepEqual(r.error.message.split('\n'), [
      `${file}:4:10: pathMTU: unknown field "pathMTU"; expected one of: data, authorityUrls, authorityPush, inside, outside, attached, tun, pathMtu, rawEspVpns, allowPlain, statusSocket, metrics, routingTable, timers, limits, ike, keystore, statusReport, logLevel`,
      `${file}:6:15: tun.insde: unknown field "insde"; expected one of: inside, outside, queues`,
      `${file}:7:24: allowPlain[1]: 10.0.0.1/8 has host bits set (did you mean 10.0.0.0/8?)`,
      `${file}:5:11: logLevel: expected fatal, error, warn, info, debug, trace or silent, got string "verbose"`,
    ]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
