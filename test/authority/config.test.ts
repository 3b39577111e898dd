// authority.json, which operators edit by hand: every mistake is reported with its line and field
// when the authority starts, instead of surfacing later as a crash (issue 11).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AUTHORITY_CONFIG_LIMITS, CONFIG_FORMAT, DEFAULT_ROTATION, readConfig } from '../../src/authority/config.js';

const good = {
  format: CONFIG_FORMAT,
  name: 'ACME',
  listen: { host: '127.0.0.1', port: 7443 },
  url: 'https://127.0.0.1:7443',
  sans: ['authority.acme.example'],
  rotation: DEFAULT_ROTATION,
  enrollment: { tokenTtlMs: 3_600_000, certificateDays: 365 },
};

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
  const bad = JSON.stringify({ ...good, listen: { host: '127.0.0.1', port: '7443' }, rotation: { ...DEFAULT_ROTATION, graceMs: -1 }, colour: 'blue', enrollment: undefined }, null, 2);
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
  withConfig('{\n  "format": "kasane-authority/1",\n  "name": \n}', (dir) => assert.throws(() => readConfig(dir), /authority\.json(:\d+:\d+)?: \(syntax\): not valid JSON: Unexpected token '}'$/));
  withConfig('{}', (dir) => {
    truncateSync(join(dir, 'authority.json'), AUTHORITY_CONFIG_LIMITS.maxJsonBytes + 1);
    assert.throws(() => readConfig(dir), /authority configuration files are limited to 1\.0 MiB/);
  });
});

test('kasane authority serve and kasane gateway run exit 2 on a configuration file they cannot use, saying where', async () => {
  const { main } = await import('../../src/cli/main.js');
  const errors: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  const dir = mkdtempSync(join(tmpdir(), 'kasane-badcfg-'));
  (process.stderr as { write: unknown }).write = (t: string) => (errors.push(String(t)), true);
  try {
    writeFileSync(join(dir, 'authority.json'), JSON.stringify({ ...good, listen: { host: '127.0.0.1', port: 'x' } }, null, 2));
    assert.equal(await main(['authority', 'serve', '--data', dir]), 2);
    writeFileSync(join(dir, 'g.yaml'), 'inside: [lan0]\noutside: [wan0]\ndata: &a [x]\nx: *b\n');
    assert.equal(await main(['gateway', 'run', '--config', join(dir, 'g.yaml')]), 2);
  } finally {
    (process.stderr as { write: unknown }).write = write;
    rmSync(dir, { recursive: true, force: true });
  }
  assert.match(errors.join(''), /authority\.json:6:13: listen\.port: expected an integer/);
  assert.match(errors.join(''), /g\.yaml(:\d+:\d+)?: \(syntax\)/);
});
