// authority.json, which operators edit by hand: every mistake is reported with its line and field
// when the authority starts, instead of surfacing later as a crash (issue 11).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AUTHORITY_CONFIG_LIMITS,
  canonicalHost,
  DEFAULT_ROTATION,
  parseListen,
  readConfig,
  urlFor,
} from '../../src/authority/config.js';
import { AUTHORITY_CONFIG } from '../support/files.js';

const good = AUTHORITY_CONFIG;

function withConfig(text: string, fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'kasane-authcfg-'));
  try {
    writeFileSync(join(dir, 'authority.json'), text);
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('authority.json as init writes it is read back', () => {
  withConfig(JSON.stringify(good, null, 2), (dir) => assert.deepEqual(readConfig(dir), good));
});

test('authority.json: wrong types, unknown and missing fields, each with its line and field', () => {
  const bad = JSON.stringify(
    {
      ...good,
      listen: { host: '127.0.0.1', port: '7443' },
      rotation: { ...DEFAULT_ROTATION, graceMs: -1 },
      colour: 'blue',
      enrollment: undefined,
    },
    null,
    2,
  );
  withConfig(bad, (dir) => {
    assert.throws(
      () => readConfig(dir),
      (e: Error) => {
        assert.match(e.message, /authority\.json:6:13: listen\.port: expected an integer from 0 to 65535, got "7443"/);
        assert.match(e.message, /authority\.json:\d+:\d+: rotation\.graceMs: expected an integer from 0/);
        assert.match(e.message, /colour: unknown field "colour"/);
        assert.match(e.message, /\(top level\): missing field "enrollment"/);
        return true;
      },
    );
  });
});

test('authority.json: a syntax error says where; an oversized file is refused unread', () => {
  withConfig('{\n  "format": "kasane-authority/1",\n  "name": \n}', (dir) =>
    assert.throws(
      () => readConfig(dir),
      /authority\.json(:\d+:\d+)?: \(syntax\): not valid JSON: Unexpected token '}'$/,
    ),
  );
  withConfig('{}', (dir) => {
    truncateSync(join(dir, 'authority.json'), AUTHORITY_CONFIG_LIMITS.maxJsonBytes + 1);
    assert.throws(() => readConfig(dir), /authority configuration files are limited to 1\.0 MiB/);
  });
});

// What `kasane authority serve` does with such a file (exit status 2): test/cli/exit-status.test.ts.

test('--listen: IPv4, IPv6 in brackets (canonicalised), names; a bare or v4-mapped IPv6 address is refused saying how to write it', () => {
  assert.deepEqual(parseListen('[::1]:7443'), { host: '::1', port: 7443 });
  assert.deepEqual(parseListen('[::]:7443'), { host: '::', port: 7443 });
  assert.deepEqual(parseListen('[2001:DB8:0:0::1]:8443'), { host: '2001:db8::1', port: 8443 });
  assert.deepEqual(parseListen('[fd00::1]'), { host: 'fd00::1', port: 7443 });
  assert.deepEqual(parseListen('0.0.0.0:7443'), { host: '0.0.0.0', port: 7443 });
  assert.deepEqual(parseListen(':9000'), { host: '127.0.0.1', port: 9000 });
  assert.deepEqual(parseListen('authority.example:7443'), { host: 'authority.example', port: 7443 });
  for (const bare of ['::1', '::1:7443', '2001:db8::1:7443', '::'])
    assert.throws(() => parseListen(bare), /IPv6 address goes in brackets: \[::1\]:7443/, bare);
  assert.throws(
    () => parseListen('[::ffff:127.0.0.1]:7443'),
    /IPv4-mapped IPv6 address; give the IPv4 address 127\.0\.0\.1/,
  );
  assert.throws(() => parseListen('[authority.example]:7443'), /not an IPv6 address/);
  assert.throws(() => parseListen('[::1]:70000'), /out of range/);
});

test('URLs of listen addresses: IPv6 in brackets; the unspecified addresses become loopback of their family', () => {
  assert.equal(urlFor('::', 7443), 'https://[::1]:7443');
  assert.equal(urlFor('2001:db8::1', 7443), 'https://[2001:db8::1]:7443');
  assert.equal(urlFor('0.0.0.0', 7443), 'https://127.0.0.1:7443');
  assert.equal(canonicalHost('0:0:0:0:0:0:0:1'), '::1');
  assert.equal(canonicalHost('Authority.Example'), 'Authority.Example');
});
