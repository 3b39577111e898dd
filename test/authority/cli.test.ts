// The administrator CLI against a running authority: tables for people, --json for scripts,
// precise errors and exit codes, connection from flags, environment or the data directory.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { enroll, parseBundle } from '../../src/authority/client.js';
import { main } from '../../src/cli/main.js';
import { cliOutput } from '../../src/cli/commands/authority-common.js';
import { freePort, startTestAuthority, type TestAuthority } from './helpers/authority.js';

interface Run {
  code: number;
  out: string;
  err: string;
}

async function kasane(...argv: string[]): Promise<Run> {
  const out: string[] = [];
  const err: string[] = [];
  // stdout carries the test runner's own reports: the CLI's output is redirected at its sink.
  const o = cliOutput.write;
  const e = process.stderr.write.bind(process.stderr);
  cliOutput.write = (c: string) => void out.push(c);
  process.stderr.write = ((c: string | Uint8Array) => (err.push(String(c)), true)) as typeof process.stderr.write;
  let code: number;
  try {
    code = await main(argv);
  } catch (x) {
    err.push(String(x));
    code = -1;
  } finally {
    cliOutput.write = o;
    process.stderr.write = e;
    process.exitCode = undefined;
  }
  return { code, out: out.join(''), err: err.join('') };
}

describe('kasane CLI (administrator commands)', () => {
  let t: TestAuthority;
  let conn: string[];
  let tmp: string;

  before(async () => {
    t = await startTestAuthority({ name: 'cli authority' });
    tmp = mkdtempSync(join(tmpdir(), 'kasane-cli-'));
    conn = ['--url', t.url, '--token', t.adminToken, '--ca', join(t.dir, 'a', 'certs', 'root-ca.pem')];
  });
  after(async () => {
    await t.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('creates VPNs, gateways and memberships, printing tables or JSON', async () => {
    let r = await kasane('vpn', 'create', 'corp', '--id', '5', '--rotation-period', '12h', '--json', ...conn);
    assert.equal(r.code, 0, r.err);
    const v = JSON.parse(r.out);
    assert.deepEqual([v.id, v.name, v.mode, v.rotationPeriodMs, v.currentEpoch], [5, 'corp', 'group', 43_200_000, 1]);
    r = await kasane('vpn', 'create', 'lab', '--mode', 'pairwise', ...conn);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /mode\s+pairwise/);
    r = await kasane('gateway', 'add', 'gw1', '--address', '192.0.2.1', ...conn);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /status\s+pending/);
    r = await kasane('member', 'add', 'corp', 'gw1', '10.1.0.0/16', '10.11.0.0/16', ...conn);
    assert.equal(r.code, 0, r.err);
    assert.match(
      r.out,
      /^VPN\s+GATEWAY\s+STATUS\s+ADDRESS\s+PREFIXES\ncorp\s+gw1\s+pending\s+192\.0\.2\.1\s+10\.1\.0\.0\/16 10\.11\.0\.0\/16\n$/,
    );
    r = await kasane('vpn', 'list', ...conn);
    assert.match(r.out, /^NAME\s+ID\s+MODE\s+EPOCH\s+MEMBERS/);
    assert.match(r.out, /\ncorp\s+5\s+group\s+1\s+1\s+12h/);
    r = await kasane('member', 'list', '--json', ...conn);
    assert.deepEqual(
      JSON.parse(r.out).map((m: { vpn: string; gateway: string }) => `${m.vpn}/${m.gateway}`),
      ['corp/gw1'],
    );
  });

  it('enrolls gateways offline (bundle file) and online (token)', async () => {
    const file = join(tmp, 'gw1.json');
    let r = await kasane('gateway', 'bundle', 'gw1', '-o', file, ...conn);
    assert.equal(r.code, 0, r.err);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const b = parseBundle(readFileSync(file, 'utf8'));
    assert.equal(b.gateway.name, 'gw1');
    r = await kasane('gateway', 'bundle', 'gw1', '-o', file, ...conn);
    assert.notEqual(r.code, 0);
    assert.match(r.err, /exists/);
    r = await kasane('gateway', 'add', 'gw2', '--address', '2001:db8::2', ...conn);
    r = await kasane('gateway', 'token', 'gw2', '--ttl', '10m', '--json', ...conn);
    assert.equal(r.code, 0, r.err);
    const tok = JSON.parse(r.out);
    assert.ok(tok.expiresAt - Date.now() > 9 * 60_000 && tok.expiresAt - Date.now() <= 10 * 60_000);
    const enrolled = await enroll({
      url: tok.authority.url,
      token: tok.token,
      caFingerprint: tok.authority.caFingerprint,
      name: 'gw2',
    });
    assert.equal(enrolled.gateway.name, 'gw2');
    r = await kasane('gateway', 'list', ...conn);
    // No status report yet: LAST REPORT, PATHS, ENCRYPTING, SEARCHES and DROPS are '-'.
    assert.match(r.out, /\ngw1\s+active\s+192\.0\.2\.1\s+corp\s+(-\s+){5}\S+\s+bundle/);
    assert.match(r.out, /\ngw2\s+active\s+2001:db8::2\s+-\s+(-\s+){5}\S+\s+online/);
  });

  it('reports refused changes precisely, with exit code 1 (JSON with --json)', async () => {
    await kasane('gateway', 'add', 'gw3', '--address', '192.0.2.3', ...conn);
    let r = await kasane('member', 'add', 'corp', 'gw3', '10.1.2.0/24', ...conn);
    assert.equal(r.code, 1);
    assert.match(
      r.err,
      /10\.1\.2\.0\/24 overlaps 10\.1\.0\.0\/16, which gateway gw1 already puts into VPN corp.*\(ambiguous-prefix, HTTP 409\)/,
    );
    r = await kasane('member', 'add', 'corp', 'gw3', '10.1.2.3/24', '--json', ...conn);
    assert.equal(r.code, 1);
    assert.deepEqual(JSON.parse(r.out).error, 'bad-cidr');
    r = await kasane('vpn', 'show', 'nope', ...conn);
    assert.equal(r.code, 1);
    assert.match(r.err, /there is no VPN named "nope" \(unknown-vpn, HTTP 404\)/);
    // Bad arguments are refused before anything is sent.
    r = await kasane('vpn', 'create', 'x', '--id', '0', ...conn);
    assert.notEqual(r.code, 0);
    assert.match(r.err, /--id <vpn-id>.*VPN id must be an integer from 1 to 4294967295/);
    r = await kasane('vpn', 'create', 'x', '--rotation-period', 'soon', ...conn);
    assert.notEqual(r.code, 0);
    assert.match(r.err, /not a duration: "soon"/);
    r = await kasane('vpn', 'create', 'x', '--mode', 'mesh', ...conn);
    assert.notEqual(r.code, 0);
    assert.match(r.err, /Allowed choices are group, pairwise/);
    r = await kasane('vpn', 'rotate', ...conn);
    assert.notEqual(r.code, 0);
    assert.match(r.err, /give a VPN name or --all/);
    r = await kasane(
      'vpn',
      'list',
      '--url',
      t.url,
      '--ca',
      join(t.dir, 'a', 'certs', 'root-ca.pem'),
      '--token',
      'kasane-admin-v1.0000000000000000.' + 'B'.repeat(43),
    );
    assert.equal(r.code, 1);
    assert.match(r.err, /bad-token, HTTP 401/);
    const saved = { ...process.env };
    try {
      delete process.env.KASANE_AUTHORITY_URL;
      delete process.env.KASANE_AUTHORITY_DATA;
      r = await kasane('vpn', 'list');
      assert.equal(r.code, 1);
      assert.match(r.err, /no authority URL/);
    } finally {
      process.env = saved;
    }
  });

  it('rotates, removes members, revokes and shows the audit log', async () => {
    let r = await kasane('vpn', 'rotate', 'corp', '--json', ...conn);
    assert.equal(r.code, 0, r.err);
    assert.equal(JSON.parse(r.out)[0].epoch, 2);
    r = await kasane('vpn', 'rotate', '--all', ...conn);
    assert.match(r.out, /\ncorp\s+3\s/);
    r = await kasane('member', 'remove', 'corp', 'gw1', '10.11.0.0/16', ...conn);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /corp\s+gw1\s+active\s+192\.0\.2\.1\s+10\.1\.0\.0\/16\n$/);
    r = await kasane('member', 'remove', 'corp', 'gw1', ...conn);
    assert.match(r.out, /gw1 is no longer a member of corp/);
    r = await kasane('gateway', 'revoke', 'gw2', '--reason', 'decommissioned', ...conn);
    assert.match(r.out, /status\s+revoked/);
    r = await kasane('audit', '--json', '--limit', '1000', ...conn);
    const actions = JSON.parse(r.out).map((e: { action: string }) => e.action);
    for (const a of [
      'vpn.create',
      'gateway.add',
      'member.add',
      'gateway.enroll',
      'vpn.rotate',
      'member.update',
      'member.remove',
      'gateway.revoke',
    ])
      assert.ok(actions.includes(a), a);
    r = await kasane('authority', 'audit', '--gateway', 'gw2', ...conn);
    assert.match(r.out, /admin:initial\s+gateway\.revoke/);
    r = await kasane('vpn', 'delete', 'lab', ...conn);
    assert.match(r.out, /deleted VPN lab/);
  });

  it('reads the connection from the environment or the data directory', async () => {
    const saved = { ...process.env };
    try {
      process.env.KASANE_AUTHORITY_URL = t.url;
      process.env.KASANE_ADMIN_TOKEN = t.adminToken;
      process.env.KASANE_AUTHORITY_CA = join(t.dir, 'a', 'certs', 'root-ca.pem');
      let r = await kasane('authority', 'status', '--json');
      assert.equal(r.code, 0, r.err);
      assert.equal(JSON.parse(r.out).authority, 'cli authority');
      process.env = { ...saved };
      r = await kasane('authority', 'status', '--data', join(t.dir, 'a'), '--url', t.url);
      assert.equal(r.code, 0, r.err);
      assert.match(r.out, /authority\s+cli authority/);
      r = await kasane('authority', 'ca', '--data', join(t.dir, 'a'), '--fingerprint');
      assert.equal(r.out.trim(), (await t.admin.status()).caFingerprint);
    } finally {
      process.env = saved;
    }
  });

  it('takes IPv6 wherever it takes IPv4: authority URLs, outside addresses, prefixes; refusals say what to write', async () => {
    const six = await startTestAuthority({ name: 'cli v6', listen: { host: '::1', port: 0 } });
    try {
      const dead = await freePort();
      // Several replicas, IPv6 literals: the first does not answer, the second does.
      const c6 = [
        '--url',
        `https://[::1]:${dead},${six.url}`,
        '--token',
        six.adminToken,
        '--ca',
        join(six.dir, 'a', 'certs', 'root-ca.pem'),
      ];
      let r = await kasane('vpn', 'create', 'six', ...c6);
      assert.equal(r.code, 0, r.err);
      r = await kasane('gateway', 'add', 'gw6', '--address', '2001:DB8:0:0::6', '--json', ...c6);
      assert.equal(r.code, 0, r.err);
      assert.equal(JSON.parse(r.out).address, '2001:db8::6');
      r = await kasane('member', 'add', 'six', 'gw6', '10.6.0.0/16', '2001:0DB8:0006::/48', ...c6);
      assert.equal(r.code, 0, r.err);
      assert.match(r.out, /\nsix\s+gw6\s+pending\s+2001:db8::6\s+10\.6\.0\.0\/16 2001:db8:6::\/48\n$/);
      r = await kasane('directory', 'add', 'FD00:9::/48', '--note', 'v6 site', ...c6);
      assert.equal(r.code, 0, r.err);
      r = await kasane('directory', 'list', ...c6);
      assert.match(r.out, /\n2001:db8:6::\/48\s+membership\s+-\n/);
      assert.match(r.out, /\nfd00:9::\/48\s+entry\s+v6 site\n/);
      r = await kasane('directory', 'remove', 'fd00:0009::/48', '--json', ...c6);
      assert.equal(r.code, 0, r.err);
      assert.deepEqual(JSON.parse(r.out).entries, []);
      r = await kasane('gateway', 'update', 'gw6', '--address', '192.0.2.6', ...c6);
      assert.equal(r.code, 0, r.err);
      assert.match(r.out, /address\s+192\.0\.2\.6/);
      r = await kasane('gateway', 'update', 'gw6', '--address', '::ffff:192.0.2.6', ...c6);
      assert.equal(r.code, 1);
      assert.match(r.err, /IPv4-mapped IPv6 address; give the IPv4 address 192\.0\.2\.6 \(bad-address, HTTP 400\)/);
      r = await kasane('member', 'add', 'six', 'gw6', '2001:db8:6:1::/64', '--json', ...c6);
      assert.equal(r.code, 1);
      assert.deepEqual(JSON.parse(r.out).error, 'overlapping-prefixes');
      r = await kasane('member', 'remove', 'six', 'gw6', '2001:db8:6:0::/48', ...c6);
      assert.equal(r.code, 0, r.err);
      assert.match(r.out, /10\.6\.0\.0\/16\n$/);
      r = await kasane(
        'vpn',
        'list',
        '--url',
        `https://::1:${dead}`,
        '--token',
        six.adminToken,
        '--ca',
        join(six.dir, 'a', 'certs', 'root-ca.pem'),
      );
      assert.equal(r.code, 1);
      assert.match(r.err, /is not a URL \(an IPv6 address goes in brackets: https:\/\/\[::1\]:7443\)/);
    } finally {
      await six.close();
    }
  });

  it('authority init takes IPv6 listen addresses in brackets, and says so when the brackets are missing', async () => {
    const data = join(tmp, 'v6-init');
    let r = await kasane(
      'authority',
      'init',
      '--data',
      data,
      '--name',
      'v6',
      '--listen',
      '[::]:7443',
      '--san',
      'FD00::7',
      '--no-token-file',
      '--json',
    );
    assert.equal(r.code, 0, r.err);
    assert.equal(JSON.parse(r.out).url, 'https://[::1]:7443');
    const config = JSON.parse(readFileSync(join(data, 'authority.json'), 'utf8'));
    assert.deepEqual(
      [config.listen, config.sans],
      [{ host: '::', port: 7443 }, ['localhost', '127.0.0.1', '::1', 'fd00::7']],
    );
    r = await kasane('authority', 'init', '--data', join(tmp, 'v6-bare'), '--name', 'v6', '--listen', '::1:7443');
    assert.equal(r.code, 1);
    assert.match(r.err, /IPv6 address goes in brackets: \[::1\]:7443/);
  });

  it('authority init makes a private data directory', async () => {
    const dir = join(tmp, 'new');
    let r = await kasane(
      'authority',
      'init',
      '--data',
      dir,
      '--name',
      'fresh',
      '--listen',
      '127.0.0.1:0',
      '--rotation-period',
      '6h',
      '--json',
    );
    assert.equal(r.code, 0, r.err);
    const j = JSON.parse(r.out);
    assert.match(j.adminToken, /^kasane-admin-v1\.[0-9a-f]{16}\./);
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    assert.equal(statSync(join(dir, 'keystore')).mode & 0o777, 0o700);
    for (const f of ['root-ca.key', 'issuing-ca.key', 'server.key', 'kek'])
      assert.equal(statSync(join(dir, 'keystore', f)).mode & 0o777, 0o600, f);
    assert.equal(readFileSync(join(dir, 'admin.token'), 'utf8').trim(), j.adminToken);
    assert.equal(JSON.parse(readFileSync(join(dir, 'authority.json'), 'utf8')).rotation.periodMs, 6 * 3_600_000);
    r = await kasane('authority', 'init', '--data', dir, '--name', 'again');
    assert.notEqual(r.code, 0);
    assert.match(r.err, /already holds an authority/);
    r = await kasane('authority', 'init', '--data', join(tmp, 'x'), '--name', 'bad\tname');
    assert.notEqual(r.code, 0);
    assert.match(r.err, /control character U\+0009/);
  });
});
