// Hostile and malformed IKE messages: garbage, truncations, bit flips, wrong SPIs, replays. Each
// is a counted drop or a refusal; none throws, none installs anything, none disturbs the SAs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KeyObject, randomBytes } from 'node:crypto';
import fc from 'fast-check';
import {
  CertEncoding,
  decodeMessage,
  encodeMessage,
  ExchangeType,
  IdType,
  NotifyType,
  type Payload,
} from '../../../src/ike/message/index.js';
import type { IkeSa } from '../../../src/ike/engine/ike-sa.js';
import { authSignedOctets, idPayloadBody } from '../../../src/ike/crypto/auth.js';
import { keyObjectSigner, signAuth } from '../../../src/ike/crypto/signature.js';
import { assertPaired, HOUR, IP_A, IP_B, T0, World, type Datagram } from './net.js';
import { permitFor } from './peers.js';
import { booleanBombName, booleanBombPermit, handshake, request, sealFragment, type Attacker } from './attacker.js';

/** A complete exchange with every datagram recorded, for replaying and mutating. */
async function recorded(): Promise<{ w: World; wire: Datagram[] }> {
  const w = await World.make({
    timers: { childLifetime: 600_000, ikeLifetime: 10 * HOUR, dpdDelay: 10 * HOUR },
    permitHours: 48,
  });
  const wire: Datagram[] = [];
  w.filter = (d) => (wire.push(d), true);
  w.connect('a');
  w.advance(T0 + 560_000); // one Child SA rekey and its delete
  w.filter = () => true;
  return { w, wire };
}

function exchangeOf(d: Datagram): number | undefined {
  const m = decodeMessage(d.bytes);
  return m.ok ? m.value.message.header.exchangeType : undefined;
}

test('random datagrams: never a throw, never an install, the SAs stay', async () => {
  const { w } = await recorded();
  const before = JSON.stringify(w.a.status(w.now));
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 0, maxLength: 600 }), fc.boolean(), (bytes, toNat) => {
      const o = w.a.receive({ address: IP_B, port: toNat ? 4500 : 500 }, bytes, w.now, toNat ? 4500 : 500);
      assert.deepEqual(o.install, []);
      assert.deepEqual(o.remove, []);
    }),
    { numRuns: 400 },
  );
  assert.equal(JSON.stringify(w.a.status(w.now)), before);
});

test('every truncation and random bit flips of every recorded message: dropped or refused, nothing installed', async () => {
  const { w, wire } = await recorded();
  const installed = [w.installed('a'), w.installed('b')];
  for (const d of wire) {
    const target = d.to.address === IP_A ? w.a : w.b;
    for (let n = 0; n < d.bytes.length; n += Math.max(1, Math.floor(d.bytes.length / 64))) {
      const o = target.receive(d.from, d.bytes.subarray(0, n), w.now, d.to.port);
      assert.deepEqual(o.install, []);
    }
  }
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: wire.length - 1 }),
      fc.array(fc.nat(), { minLength: 1, maxLength: 4 }),
      (i, flips) => {
        const d = wire[i];
        const bytes = Buffer.from(d.bytes);
        for (const f of flips) bytes[f % bytes.length] ^= 1 << (f % 8);
        if (bytes.equals(d.bytes)) return;
        const target = d.to.address === IP_A ? w.a : w.b;
        const o = target.receive(d.from, bytes, w.now, d.to.port);
        assert.deepEqual(o.install, [], `a flipped message installed a Child SA (message ${i})`);
        assert.deepEqual(o.remove, []);
      },
    ),
    { numRuns: 300 },
  );
  assert.deepEqual([w.installed('a'), w.installed('b')], installed);
  // Still working: a liveness check comes back.
  w.reset();
  w.advance(w.now + 10 * HOUR + 1000);
  assert.deepEqual(w.events('a', 'ike-down'), []);
});

test('replays: old IKE_SA_INIT, IKE_AUTH, CREATE_CHILD_SA and INFORMATIONAL messages change nothing', async () => {
  const { w, wire } = await recorded();
  const installs = [w.log.a.installs.length, w.log.b.installs.length];
  const status = [JSON.stringify(w.a.status(w.now)), JSON.stringify(w.b.status(w.now))];
  for (const d of wire) {
    const side = d.to.address === IP_A ? 'a' : 'b';
    const o = w.engine(side).receive(d.from, d.bytes, w.now, d.to.port);
    assert.deepEqual(o.install, [], `replayed exchange ${exchangeOf(d)} installed`);
    assert.deepEqual(o.remove, []);
    // A replayed request at most brings back the cached answer to the last one.
    for (const s of o.send)
      assert.ok(
        w.log[side].sent.some((x) => x.bytes.equals(s.bytes)),
        'only cached answers are resent',
      );
  }
  assert.deepEqual([w.log.a.installs.length, w.log.b.installs.length], installs);
  assert.deepEqual([JSON.stringify(w.a.status(w.now)), JSON.stringify(w.b.status(w.now))], status);
  assertPaired(w);
});

test('wrong SPIs and a message from another address find no SA', async () => {
  const { w, wire } = await recorded();
  const auth = wire.find((d) => exchangeOf(d) === ExchangeType.IKE_AUTH && d.to.address === IP_B)!;
  const wrongR = Buffer.from(auth.bytes);
  wrongR[8] ^= 0xff; // responder SPI
  let o = w.b.receive(auth.from, wrongR, w.now, 4500);
  assert.match(o.events[0].reason!, /no IKE SA/);
  const wrongI = Buffer.from(auth.bytes);
  wrongI[0] ^= 0xff;
  o = w.b.receive(auth.from, wrongI, w.now, 4500);
  assert.match(o.events[0].reason!, /no IKE SA/);
  o = w.b.receive({ address: '203.0.113.66', port: 4500 }, auth.bytes, w.now, 4500);
  assert.match(o.events[0].reason!, /no IKE SA/);
  // The I flag flipped: a "response" from the initiator is not the responder's.
  const flag = Buffer.from(auth.bytes);
  flag[19] ^= 0x08;
  o = w.b.receive(auth.from, flag, w.now, 4500);
  assert.equal(o.install.length, 0);
});

// --- issue 11: what a peer that ran IKE_SA_INIT can make the responder hold or spend --------------

const B_AT = { address: IP_B, port: 500 };

test('fragments before authentication are bounded in bytes per SA and in total; the largest holder gives way', async () => {
  const w = await World.make({
    timers: { maxFragmentBytesPerSa: 64 * 1024, maxFragmentBytesTotal: 200 * 1024, fragmentSize: 576 },
  });
  const chunk = Buffer.alloc(30_000, 0x41);
  // One half-open SA sends 30 fragments of 30 KB of a 31-fragment message, never the last.
  const a = handshake(w.b, B_AT, '203.0.113.5', w.now);
  const refused: string[] = [];
  for (let n = 1; n <= 30; n++) {
    const o = w.b.receive(a.from, sealFragment(a.sa, n, 31, chunk), w.now, 4500);
    refused.push(...o.events.filter((e) => e.event === 'dropped').map((e) => e.reason!));
    assert.ok(w.b.load().fragmentBytes <= 64 * 1024, `${w.b.load().fragmentBytes} bytes held after fragment ${n}`);
  }
  assert.ok(
    refused.some((r) => /fragments for one IKE SA; at most 65536/.test(r)),
    refused.join('\n'),
  );
  // Four more SAs each hold what they may: the total bound holds.
  for (let i = 0; i < 4; i++) {
    const x = handshake(w.b, B_AT, `203.0.${100 + i}.5`, w.now);
    for (let n = 1; n <= 2; n++) w.b.receive(x.from, sealFragment(x.sa, n, 31, chunk), w.now, 4500);
    assert.ok(w.b.load().fragmentBytes <= 200 * 1024);
  }
  // A legitimate IKE_AUTH in small fragments (fragmentSize 576) still gets through: big holders give way.
  w.connect('a');
  assert.equal(w.events('a', 'ike-up').length, 1, JSON.stringify(w.log.b.events.slice(-4)));
  assertPaired(w);
});

test('the fragments of an SA that goes are given back', async () => {
  const w = await World.make({ timers: { halfOpenTimeout: 5_000 } });
  const a = handshake(w.b, B_AT, '203.0.113.5', w.now);
  w.b.receive(a.from, sealFragment(a.sa, 1, 3, Buffer.alloc(10_000)), w.now, 4500);
  assert.equal(w.b.load().fragmentBytes, 10_000);
  w.advance(w.now + 6_000);
  assert.deepEqual(w.b.load(), { halfOpen: 0, fragmentBytes: 0, refusedKept: 0 });
});

test('an unauthenticated IKE_AUTH: a 60 KB ID is refused by its length, a small odd one for the AUTH before the ID is decoded', async () => {
  const w = await World.make();
  const forged = () => Buffer.concat([Buffer.from('0c300a06082a8648ce3d040302', 'hex'), randomBytes(72)]);
  for (const [id, reason] of [
    [booleanBombName(60_000), /^auth-failed auth-id-mismatch: the peer's ID is 600\d\d bytes/],
    [booleanBombName(100), /^auth-failed auth-bad-signature/],
  ] as const) {
    const a = handshake(w.b, B_AT, '203.0.113.5', w.now);
    const inner: Payload[] = [
      { kind: 'IDi', idType: IdType.ID_DER_ASN1_DN, data: id },
      { kind: 'CERT', encoding: CertEncoding.X509_SIGNATURE, data: Buffer.from(w.ga.identity.certificate) },
      { kind: 'AUTH', method: 14, data: forged() },
    ];
    const events: string[] = [];
    for (const p of request(a, ExchangeType.IKE_AUTH, inner, 8000))
      events.push(...w.b.receive(a.from, p, w.now, 4500).events.map((e) => `${e.event} ${e.reason}`));
    assert.ok(
      events.some((e) => reason.test(e)),
      events.join('\n'),
    );
  }
});

test('an authenticated peer with the right AUTH but another ID is refused (auth-id-mismatch), compared without a library', async () => {
  const w = await World.make();
  const a = handshake(w.b, B_AT, IP_A, w.now);
  const id = { idType: IdType.ID_DER_ASN1_DN, data: booleanBombName(2000) };
  const inner: Payload[] = [
    { kind: 'IDi', ...id },
    { kind: 'CERT', encoding: CertEncoding.X509_SIGNATURE, data: Buffer.from(w.ga.identity.certificate) },
    { kind: 'AUTH', method: 14, data: signedBy(w.ga.key, a, id) },
  ];
  const events: string[] = [];
  for (const p of request(a, ExchangeType.IKE_AUTH, inner))
    events.push(...w.b.receive(a.from, p, w.now, 4500).events.map((e) => `${e.event} ${e.reason}`));
  assert.ok(
    events.some((e) => /^auth-failed auth-id-mismatch/.test(e)),
    events.join('\n'),
  );
});

test('an authenticated peer sending a crafted 16 KiB permit (a long BOOLEAN): refused before the ASN.1 library decodes it', async () => {
  const w = await World.make();
  const a = handshake(w.b, B_AT, IP_A, w.now);
  const subject = Buffer.from(w.ga.cert.subjectName.toArrayBuffer());
  const id = { idType: IdType.ID_DER_ASN1_DN, data: subject };
  const bomb = booleanBombPermit(w.peersOfA[0].permit, 16 * 1024 - w.peersOfA[0].permit.length - 8);
  const inner: Payload[] = [
    { kind: 'IDi', ...id },
    { kind: 'CERT', encoding: CertEncoding.X509_SIGNATURE, data: Buffer.from(w.ga.identity.certificate) },
    { kind: 'CERT', encoding: CertEncoding.X509_ATTRIBUTE, data: bomb },
    { kind: 'AUTH', method: 14, data: signedBy(w.ga.key, a, id) },
  ];
  const events: string[] = [];
  for (const p of request(a, ExchangeType.IKE_AUTH, inner, 4000))
    events.push(...w.b.receive(a.from, p, w.now, 4500).events.map((e) => `${e.event} ${e.reason}`));
  assert.ok(
    events.some((e) => /^auth-failed permit-refused: .*permit-not-der: .*a BOOLEAN is one octet/.test(e)),
    events.join('\n'),
  );
});

test('a decryptable request with an unknown critical payload is answered UNSUPPORTED_CRITICAL_PAYLOAD naming it (RFC 7296 §2.5)', async () => {
  // In IKE_AUTH (the SA then goes, and a retransmission gets the same answer)...
  const w = await World.make();
  const a = handshake(w.b, B_AT, '203.0.113.5', w.now);
  const packets = request(a, ExchangeType.IKE_AUTH, [
    { kind: 'unknown', type: 200, critical: true, data: Buffer.from('x') },
  ]);
  const first = w.b.receive(a.from, packets[0], w.now, 4500);
  assert.deepEqual(notifiesIn(a, first), [[NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD, 'c8']]);
  assert.equal(w.b.status(w.now).length, 0);
  const again = w.b.receive(a.from, packets[0], w.now + 500, 4500);
  assert.deepEqual(
    again.send.map((s) => s.bytes.toString('hex')),
    first.send.map((s) => s.bytes.toString('hex')),
  );
  // ...and in an established SA (INFORMATIONAL), which stays up; a malformed inner chain gets INVALID_SYNTAX.
  const { w: up } = await recorded();
  const sa = [...(up.a as unknown as { sas: Map<string, IkeSa> }).sas.values()].find((s) => s.state === 'established')!;
  const id = sa.nextRequestId++;
  const o = up.b.receive(
    { address: IP_A, port: 4500 },
    sa.protect(ExchangeType.INFORMATIONAL, false, id, [
      { kind: 'unknown', type: 201, critical: true, data: Buffer.alloc(0) },
    ])[0],
    up.now,
    4500,
  );
  const reply = decodeMessage(o.send[0].bytes);
  assert.ok(reply.ok);
  const inner = sa.unprotect(reply.value, up.now);
  assert.ok(inner.ok && inner.value);
  assert.deepEqual(
    inner.value.map((p) => (p.kind === 'N' ? [p.notifyType, p.data.toString('hex')] : p.kind)),
    [[NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD, 'c9']],
  );
  assert.equal(up.b.status(up.now).filter((s) => s.state === 'established').length, 1);
});

test('a retransmitted IKE_AUTH that was refused gets the same AUTHENTICATION_FAILED again, and the initiator reports the refusal', async () => {
  const w = await World.make();
  w.peersOfA = [w.entry('a', await permitFor(w.B, w.ga, 'shared', T0 - 2 * HOUR, T0 - 60_000))]; // expired
  let lost = 0;
  w.filter = (d) => {
    const m = decodeMessage(d.bytes);
    if (
      m.ok &&
      m.value.message.header.response &&
      m.value.message.header.exchangeType === ExchangeType.IKE_AUTH &&
      lost === 0
    )
      return (lost++, false);
    return true;
  };
  w.connect('a');
  assert.equal(lost, 1);
  assert.equal(w.b.load().refusedKept, 1);
  w.advance(w.now + 2_000);
  const failed = w.events('a', 'auth-failed');
  assert.equal(failed.length, 1, JSON.stringify(w.log.a.events));
  assert.match(failed[0].reason!, /peer-refused-auth/);
  assert.deepEqual(w.events('a', 'failed'), [], 'not peer-unresponsive');
  // The kept answer goes after halfOpenTimeout.
  w.advance(w.now + 31_000);
  assert.equal(w.b.load().refusedKept, 0);
});

/** The notifies (type, data hex) in the encrypted answers an attacker's request got. */
function notifiesIn(a: Attacker, o: { send: { bytes: Buffer }[] }): [number, string][] {
  const out: [number, string][] = [];
  for (const s of o.send) {
    const d = decodeMessage(s.bytes);
    assert.ok(d.ok);
    const inner = a.sa.unprotect(d.value, T0);
    assert.ok(inner.ok && inner.value, 'the answer decrypts');
    for (const p of inner.value) if (p.kind === 'N') out.push([p.notifyType, p.data.toString('hex')]);
  }
  return out;
}

function signedBy(key: CryptoKey, a: Attacker, id: { idType: number; data: Buffer }): Buffer {
  const sa = a.sa;
  const octets = authSignedOctets(sa.suite!.prf, sa.keys!, 'initiator', {
    realMessage: sa.initRequest!,
    peerNonce: sa.nr!,
    idBody: idPayloadBody(id.idType, id.data),
  });
  return signAuth(keyObjectSigner(KeyObject.from(key), 'ecdsa-with-SHA256'), 'ecdsa-with-SHA256', octets);
}

test('an IKE_SA_INIT request with an unknown critical payload is answered UNSUPPORTED_CRITICAL_PAYLOAD, statelessly', async () => {
  const w = await World.make();
  const header = {
    spiI: randomBytes(8),
    spiR: Buffer.alloc(8),
    exchangeType: ExchangeType.IKE_SA_INIT,
    initiator: true,
    response: false,
    higherVersion: false,
    messageId: 0,
  };
  const req = encodeMessage({
    header,
    payloads: [
      { kind: 'unknown', type: 222, critical: true, data: Buffer.from('?') },
      { kind: 'Nonce', data: randomBytes(32) },
    ],
  });
  const o = w.b.receive({ address: '203.0.113.5', port: 500 }, req, w.now, 500);
  const reply = decodeMessage(o.send[0].bytes);
  assert.ok(reply.ok);
  assert.ok(reply.value.message.header.response);
  assert.deepEqual(
    reply.value.message.payloads.map((p) => (p.kind === 'N' ? [p.notifyType, p.data.toString('hex')] : p.kind)),
    [[NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD, 'de']],
  );
  assert.ok(o.send[0].bytes.length <= req.length, 'no amplification');
  assert.deepEqual(w.b.load(), { halfOpen: 0, fragmentBytes: 0, refusedKept: 0 });
  // A request too short to carry anything real gets no answer at all (the answer would be larger).
  const tiny = encodeMessage({
    header,
    payloads: [{ kind: 'unknown', type: 222, critical: true, data: Buffer.alloc(0) }],
  });
  assert.deepEqual(w.b.receive({ address: '203.0.113.5', port: 500 }, tiny, w.now, 500).send, []);
});
