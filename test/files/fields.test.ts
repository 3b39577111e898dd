// The one reader of the fields of operators' files (topology, gateway configuration,
// authority.json): each getter takes a good value and names a bad one at its path, every mistake
// of a document is reported in one pass, and a file's problems carry their line and column.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkFields, FieldReader, formatIssues, MAX_FIELD_ISSUES, readFields } from '../../src/files/fields.js';

const LIMITS = { kind: 'test', maxYamlBytes: 4096, maxJsonBytes: 4096 };

test('getters return the typed value, or undefined and a problem at the field path', () => {
  const r = new FieldReader();
  assert.equal(r.string('a', ['s']), 'a');
  assert.equal(r.string('', ['e']), undefined);
  assert.equal(r.string('', ['ok'], { empty: true }), '');
  assert.equal(r.string('eth 0', ['dev', 2], { pattern: /^\S+$/, what: 'an interface name' }), undefined);
  assert.equal(r.integer(7443, ['port'], { min: 0, max: 65535 }), 7443);
  assert.equal(r.integer('7443', ['port'], { min: 0, max: 65535 }), undefined);
  assert.equal(r.integer(1.5, ['n'], { min: 0 }), undefined);
  assert.equal(r.number(0, ['t'], { above: 0 }), undefined);
  assert.equal(r.number(Number.NaN, ['t']), undefined);
  assert.equal(r.boolean(true, ['b']), true);
  assert.equal(r.boolean('yes', ['b']), undefined);
  assert.equal(r.oneOf('info', ['level'], ['debug', 'info', 'warn'] as const), 'info');
  assert.equal(r.oneOf('loud', ['level'], ['debug', 'info', 'warn'] as const), undefined);
  assert.deepEqual(
    r.issues.map((i) => [i.path.join('.'), i.message]),
    [
      ['e', 'expected a non-empty string, got string ""'],
      ['dev.2', '"eth 0" is not an interface name'],
      ['port', 'expected an integer from 0 to 65535, got "7443"'],
      ['n', `expected an integer from 0 to ${Number.MAX_SAFE_INTEGER}, got 1.5`],
      ['t', 'must be greater than 0, got 0'],
      ['t', 'expected a number, got not-a-number (.nan)'],
      ['b', 'expected true or false, got string "yes"'],
      ['level', 'expected debug, info or warn, got string "loud"'],
    ],
  );
  assert.equal(r.failures, 8);
});

test('addresses and prefixes: IPv4 and IPv6, canonical, with an optional family restriction', () => {
  const r = new FieldReader();
  assert.equal(r.ip('10.0.0.1', ['a']), '10.0.0.1');
  assert.equal(r.ip('FD00:0:0::1', ['a']), 'fd00::1');
  assert.equal(r.ip('fd00::1', ['a'], 4), undefined);
  assert.equal(r.ip('10.0.0.1', ['a'], 6), undefined);
  assert.equal(r.ip('10.0.0.256', ['a']), undefined);
  assert.equal(r.ip(5, ['a']), undefined);
  assert.equal(r.prefix('fd00::/8', ['p'])?.toString(), 'fd00::/8');
  assert.equal(r.prefix('10.0.0.0/8', ['p'], 4)?.toString(), '10.0.0.0/8');
  assert.equal(r.prefix('fd00::/8', ['p'], 4), undefined);
  assert.equal(r.prefix('10.0.0.1/8', ['p']), undefined);
  assert.deepEqual(
    r.issues.map((i) => i.message),
    [
      'fd00::1 is not an IPv4 address',
      '10.0.0.1 is not an IPv6 address',
      'not an IP address: "10.0.0.256"',
      'expected an IP address, got number 5',
      'fd00::/8 is not an IPv4 prefix',
      '10.0.0.1/8 has host bits set (did you mean 10.0.0.0/8?)',
    ],
  );
});

test('objects reject unknown keys and name missing ones; lists and number maps report each bad item at its index or name', () => {
  const r = new FieldReader();
  const o = r.object({ a: 1, colour: 'blue' }, ['x'], ['a', 'b'], ['a', 'b']);
  assert.deepEqual(o, { a: 1, colour: 'blue' });
  assert.equal(r.object([1], ['y'], ['a']), undefined);
  assert.deepEqual(
    r.listOf(['10.0.0.1', 'nope', '10.0.0.2'], ['hosts'], (v, at) => r.ip(v, at)),
    ['10.0.0.1', '10.0.0.2'],
  );
  assert.equal(
    r.listOf([], ['need'], (v) => v, 1),
    undefined,
  );
  assert.deepEqual(
    r.numbers({ idle: 5, retries: 1.5, idel: 3 }, ['timers'], { idle: 0, retries: 0 }, (k) => ({
      min: 0,
      integer: k === 'retries',
    })),
    { idle: 5 },
  );
  assert.deepEqual(
    r.issues.map((i) => `${i.path.join('.')}: ${i.message}`),
    [
      'x.colour: unknown field "colour"; expected one of: a, b',
      'x: missing field "b"',
      'y: expected a mapping (key: value), got a list',
      'hosts.1: not an IP address: "nope"',
      'need: expected a list of at least 1, got 0',
      'timers.idel: unknown field "idel"; expected one of: idle, retries',
      'timers.retries: expected an integer, got 1.5',
    ],
  );
});

test('a file: every problem with its line, column and field; a parsed value: the field alone', () => {
  const read = (r: FieldReader, v: unknown) => {
    const top = r.object(v, [], ['peers', 'port']);
    const peers = r.listOf(top?.peers, ['peers'], (p, at) => r.ip(p, at));
    const port = r.integer(top?.port, ['port'], { min: 1, max: 65535 });
    return peers && port !== undefined ? { peers, port } : undefined;
  };
  const text = 'port: 0\npeers:\n  - 10.0.0.1\n  - fd00::1\n  - bad\n';
  const r = readFields({ text, file: 'p.yaml' }, LIMITS, read);
  assert.ok(!r.ok);
  assert.equal(
    formatIssues(r.error.issues, r.error.file),
    'p.yaml:5:5: peers[2]: not an IP address: "bad"\np.yaml:1:7: port: expected an integer from 1 to 65535, got 0',
  );
  const untitled = readFields({ text }, LIMITS, read);
  assert.ok(!untitled.ok);
  assert.match(formatIssues(untitled.error.issues, untitled.error.file), /^line 5:5: peers\[2\]: not an IP address/);
  const good = checkFields({ port: 500, peers: ['fd00::1'] }, read);
  assert.deepEqual(good, { ok: true, value: { port: 500, peers: ['fd00::1'] } });
  const bad = checkFields({ port: 500, peers: 'x' }, read);
  assert.ok(!bad.ok);
  assert.equal(formatIssues(bad.error.issues, 'cfg'), 'cfg: peers: expected a list, got string "x"');
});

test('a document with very many mistakes: the first ones are reported, and the list says it stops', () => {
  const r = checkFields(
    Array.from({ length: 200 }, (_, i) => `h${i}`),
    (rd, v) => rd.listOf(v, [], (x, at) => rd.ip(x, at)),
  );
  assert.ok(!r.ok);
  assert.equal(r.error.issues.length, MAX_FIELD_ISSUES);
  const lines = formatIssues(r.error.issues).split('\n');
  assert.equal(lines.length, MAX_FIELD_ISSUES + 1);
  assert.equal(lines.at(-1), `(stopped after ${MAX_FIELD_ISSUES} problems)`);
});
