// The native executor against docs/executor.md, with its ESP checked against an independent
// AES-256-GCM implementation on node:crypto (test/native/support.ts).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  fixIpChecksum,
  hex,
  ipHeaderOk,
  ipv4,
  mssOf,
  newExecutor,
  ping,
  refEncrypt,
  reassemble,
  refEncryptCarried,
  espOffset,
  refEspOpen,
  refEspSeal,
  tcp,
  tcpOk,
  fwd,
  groupSa,
} from './support.js';

const B = '10.2.0.10';
const A = '10.1.0.10';
const SPI = 0x1001;
const { K, SA, sender, receiver, pair: executors } = groupSa(A, B, SPI, 1);

describe('native executor: encrypt (inside)', () => {
  it('produces exactly the ESP of an independent implementation, seq 1, 2, ...', (t) => {
    const ex = newExecutor(t);
    if (!ex) return;
    sender(ex);
    for (const [i, data] of ['a', 'ab', 'abc', 'abcd', 'kasane vector payload'].entries()) {
      const p = ping(B, A, i + 1, data, true);
      const v = fwd(ex.process('inside', p, 1000 + i));
      assert.equal(hex(v.bytes), hex(refEncrypt(SA, BigInt(i + 1), p)), `packet ${i}`);
      assert.deepEqual(v.note, { op: 'encrypt', vpnId: 1, spi: SPI, seq: BigInt(i + 1) });
      assert.ok(ipHeaderOk(v.bytes));
      // Header kept: id, ttl, tos, addresses; protocol 17 (ESP in UDP 4500 -> 4500, checksum 0);
      // length grows by 8 + 34..37.
      assert.deepEqual([...v.bytes.subarray(4, 9)], [...p.subarray(4, 9)]);
      assert.deepEqual([...v.bytes.subarray(12, 20)], [...p.subarray(12, 20)]);
      assert.equal(v.bytes[9], 17);
      assert.deepEqual([...v.bytes.subarray(20, 24)], [0x11, 0x94, 0x11, 0x94]);
      assert.equal((v.bytes[24] << 8) | v.bytes[25], v.bytes.length - 20);
      assert.ok(v.bytes.length - p.length >= 42 && v.bytes.length - p.length <= 45);
      assert.equal((v.bytes.length - 28 - 16 - 16) % 4, 0);
    }
    assert.equal(ex.txNextSeq(1), 6n);
    assert.deepEqual(ex.pathStats(B, A), {
      packets: 5,
      bytes: [1, 2, 3, 4, 21].reduce((n, d) => n + 28 + d, 0),
      lastUsed: 1004,
    });
    assert.equal(ex.counters()['encrypt.packets'], 5);
    // Raw ESP, selectable per VPN (the sending SA): protocol 50, no UDP header.
    ex.installTxSa({ spi: SPI, vpnId: 1, epoch: 1, key: K.key, salt: K.salt, nextSeq: 6n, encapsulation: 'esp' });
    const raw = ping(B, A, 6, 'raw', true);
    assert.equal(hex(fwd(ex.process('inside', raw, 1004)).bytes), hex(refEncrypt(SA, 6n, raw, 'esp')));
    const rawNoDf = ping(B, A, 7, 'raw');
    assert.equal(hex(fwd(ex.process('inside', rawNoDf, 1004)).bytes), hex(refEncryptCarried(SA, 7n, rawNoDf, 'esp')));
  });

  it('carries a packet without DF whole (next header 4) behind an outer header with DF', (t) => {
    const ex = newExecutor(t);
    if (!ex) return;
    sender(ex);
    for (const [i, data] of ['a', 'ab', 'abc', 'abcd'].entries()) {
      const p = ping(B, A, i + 1, data);
      p[1] = 0x2a;
      p[8] = 33;
      fixIpChecksum(p);
      const v = fwd(ex.process('inside', p, 1000 + i));
      assert.equal(hex(v.bytes), hex(refEncryptCarried(SA, BigInt(i + 1), p)), `packet ${i}`);
      assert.equal(v.more, undefined);
      assert.equal(v.bytes[6] & 0x40, 0x40, 'DF on the outer header');
      assert.equal(v.bytes.length - p.length, 20 + 8 + 16 + 16 + 2 + ((4 - ((p.length + 2) % 4)) % 4));
    }
  });

  it('keeps IPv4 options and uses the 64-bit sequence number in IV and AAD', (t) => {
    const ex = newExecutor(t);
    if (!ex) return;
    const start = 0x1_0000_0005n;
    ex.installTxSa({ spi: SPI, vpnId: 1, epoch: 1, key: K.key, salt: K.salt, nextSeq: start });
    ex.installPath({ local: B, remote: A, action: 'encrypt', vpnId: 1, peer: 'G1' });
    const p = ipv4({
      src: B,
      dst: A,
      proto: 17,
      payload: new Uint8Array(13).fill(9),
      options: Uint8Array.of(1, 1, 1, 0),
      df: true,
    });
    const v = fwd(ex.process('inside', p, 1));
    assert.equal(hex(v.bytes), hex(refEncrypt(SA, start, p)));
    assert.deepEqual([...v.bytes.subarray(20, 24)], [1, 1, 1, 0]);
    const back = refEspOpen(SA, v.bytes.subarray(32));
    assert.ok(back);
    assert.equal(back.seq, start);
    assert.equal(back.nh, 17);
    assert.equal(hex(back.payload), hex(p.subarray(24)));
  });

  it('carries fragments, fragments what exceeds the path without DF, punts too-big with DF, drops without a sending SA', (t) => {
    const pair = executors(t, 108);
    if (!pair) return;
    const { ex, rx } = pair;
    // A terminal's own fragments are carried whole and arrive as they were sent.
    const frag = ipv4({ src: B, dst: A, proto: 17, payload: new Uint8Array(8), mf: true });
    const later = ipv4({ src: B, dst: A, proto: 17, payload: new Uint8Array(8), fragOffset: 3 });
    let seq = 1n;
    for (const f of [frag, later]) {
      const v = fwd(ex.process('inside', f, 1));
      assert.equal(hex(v.bytes), hex(refEncryptCarried(SA, seq++, f)));
      assert.equal(hex(fwd(rx.process('outside', v.bytes, 1)).bytes), hex(f));
    }
    // 28 + 40 = 68 bytes; + 42..45 > 108 with 40 data bytes: 68 + 42 = 110.
    const big = ping(B, A, 1, 'x'.repeat(40), true);
    assert.deepEqual(ex.process('inside', big, 2), { kind: 'punt', reason: 'too-big' });
    // Without DF: fragments of at most 16 data bytes (108 - 65 - 20, rounded down to 8), each in
    // its own ESP packet of at most 108 bytes, with DF; the receiver delivers the fragments.
    const bigNoDf = ping(B, A, 1, 'x'.repeat(40), false);
    const v = fwd(ex.process('inside', bigNoDf, 3));
    const out = [v.bytes, ...(v.more ?? [])];
    assert.equal(out.length, 3);
    const pieces = out.map((o, i) => {
      assert.ok(o.length <= 108 && (o[6] & 0x40) !== 0 && ipHeaderOk(o), `ESP packet ${i}`);
      const opened = refEspOpen(SA, o.subarray(espOffset(o)));
      assert.ok(opened && opened.nh === 4 && opened.seq === seq + BigInt(i));
      assert.equal(
        hex(fwd(rx.process('outside', o, 3)).bytes),
        hex(opened.payload),
        'the receiver delivers the fragment',
      );
      return opened.payload;
    });
    seq += 3n;
    assert.equal(hex(reassemble(pieces)), hex(bigNoDf), 'the fragments make the packet again');
    const fits = ping(B, A, 1, 'x'.repeat(36), true); // 64 + 8 + 36 (2 pad) = 108
    assert.equal(ex.process('inside', fits, 4).kind, 'forward');
    // No IPv4 packet can carry more than 65535 bytes; and more than 64 fragments are refused too.
    const huge = ipv4({ src: B, dst: A, proto: 17, payload: new Uint8Array(65535 - 20 - 10), df: true });
    assert.deepEqual(ex.process('inside', huge, 5), { kind: 'punt', reason: 'too-big' });
    const many = ipv4({ src: B, dst: A, proto: 17, payload: new Uint8Array(16 * 65) });
    assert.deepEqual(ex.process('inside', many, 5), { kind: 'punt', reason: 'too-big' });
    ex.removeTxSa(1);
    assert.deepEqual(ex.process('inside', fits, 5), { kind: 'drop', reason: 'no-sa' });
    // Only forwarded packets counted toward the rule.
    assert.equal(ex.pathStats(B, A)?.packets, 4);
    const c = ex.counters();
    assert.equal(c['drop.fragment'], undefined);
    assert.equal(c['encrypt.fragments'], 3);
    assert.equal(c['punt.too-big'], 3);
    assert.equal(c['drop.no-sa'], 1);
    // A fragment of ESP (what some router made of a packet without DF) cannot be opened.
    const outer = refEncryptCarried(SA, 50n, ping(B, A));
    outer[6] |= 0x20;
    assert.deepEqual(rx.process('outside', fixIpChecksum(outer), 6), { kind: 'drop', reason: 'fragment' });
  });

  it('clamps the MSS of a TCP SYN to mtu - 85 with a valid checksum, also at an odd offset', (t) => {
    const pair = executors(t, 1400);
    if (!pair) return;
    const { ex, rx } = pair;
    const cases = [
      Uint8Array.of(2, 4, 0x05, 0xb4), // MSS 1460 first
      Uint8Array.of(1, 2, 4, 0x05, 0xb4, 1, 1, 1), // NOP, then MSS at an odd offset
      Uint8Array.of(1, 1, 2, 4, 0x02, 0x00), // MSS 512: below the limit, untouched
    ];
    for (const [i, options] of cases.entries()) {
      // With DF the transport form (45 bytes at most); without, the carried form (65).
      for (const df of [true, false]) {
        const syn = tcp({ src: B, dst: A, sport: 40000 + i, dport: 80, seq: 7, flags: 0x02, options, df });
        const v = fwd(ex.process('inside', syn, 10 + i));
        const inner = fwd(rx.process('outside', v.bytes, 10 + i)).bytes;
        const want = Math.min(mssOf(syn)!, 1400 - (df ? 45 : 65) - 40);
        assert.equal(mssOf(inner), want, `case ${i}, DF ${df}`);
        assert.ok(tcpOk(inner), `TCP checksum after clamping, case ${i}`);
        assert.ok(ipHeaderOk(inner));
      }
    }
    // Not a SYN: untouched.
    const ack = tcp({
      src: B,
      dst: A,
      sport: 1,
      dport: 2,
      seq: 1,
      flags: 0x10,
      options: Uint8Array.of(2, 4, 0x05, 0xb4),
    });
    const v = fwd(ex.process('inside', ack, 20));
    assert.equal(mssOf(fwd(rx.process('outside', v.bytes, 20)).bytes), 1460);
  });

  it('does not modify the caller buffer', (t) => {
    const ex = newExecutor(t);
    if (!ex) return;
    sender(ex, 1400);
    const syn = tcp({
      src: B,
      dst: A,
      sport: 1,
      dport: 2,
      seq: 1,
      flags: 0x02,
      options: Uint8Array.of(2, 4, 0x05, 0xb4),
    });
    const before = hex(syn);
    ex.process('inside', syn, 1);
    assert.equal(hex(syn), before);
  });
});

describe('native executor: decrypt (outside)', () => {
  it('decrypts ESP built independently and restores the original packet', (t) => {
    const ex = newExecutor(t);
    if (!ex) return;
    receiver(ex);
    for (const seq of [1n, 2n, 0xffff_ffffn, 0x1_0000_0000n]) {
      const p = ipv4({ src: B, dst: A, proto: 17, payload: new Uint8Array(Number(seq % 7n) + 3).fill(5), id: 77 });
      const v = fwd(ex.process('outside', refEncrypt(SA, seq, p), 5));
      assert.equal(hex(v.bytes), hex(p));
      assert.deepEqual(v.note, { op: 'decrypt', vpnId: 1, spi: SPI, seq, sender: 'G2' });
    }
    assert.equal(ex.counters()['decrypt.packets'], 4);
  });

  it('rejects replays within and behind the 32768-packet window', (t) => {
    const ex = newExecutor(t);
    if (!ex) return;
    receiver(ex);
    const p = ping(B, A);
    const at = (seq: bigint) => ex.process('outside', refEncrypt(SA, seq, p), 1).kind;
    assert.equal(at(40000n), 'forward');
    assert.equal(at(40000n), 'drop');
    assert.equal(at(7233n), 'forward'); // 40000 - 32767: inside the window
    assert.equal(at(7232n), 'drop'); // 40000 - 32768: behind it
    assert.equal(at(30000n), 'forward');
    assert.equal(at(30000n), 'drop');
    assert.equal(at(100000n), 'forward'); // a jump clears the window
    assert.equal(at(90000n), 'forward');
    assert.equal(at(30000n), 'drop');
    assert.equal(ex.counters()['drop.replay'], 4);
  });

  it('matches a set-based model of the anti-replay window (property)', (t) => {
    if (!newExecutor(t)) return;
    fc.assert(
      fc.property(
        // Jumps of up to twice the window, and numbers close together.
        fc.array(fc.oneof(fc.integer({ min: 1, max: 70000 }), fc.integer({ min: 1, max: 40 })), {
          minLength: 1,
          maxLength: 60,
        }),
        (seqs) => {
          const ex = newExecutor(t)!;
          receiver(ex);
          const seen = new Set<number>();
          let top = 0;
          const p = ping(B, A);
          for (const s of seqs) {
            const ok = !seen.has(s) && (s > top || top - s < 32768);
            const v = ex.process('outside', refEncrypt(SA, BigInt(s), p), 1);
            assert.equal(v.kind === 'forward', ok, `seq ${s} top ${top}`);
            if (ok) {
              seen.add(s);
              top = Math.max(top, s);
            }
          }
        },
      ),
      { numRuns: 60 },
    );
  });

  it('a receiving SA takes its 4 KB window bitmap with its first packet, not before', (t) => {
    const ex = newExecutor(t);
    if (!ex) return;
    // A gateway holds a receiving SA for every member of its VPNs; most never send to it. 20,000
    // of them cost ~2 KB each (the cipher template, the table); with the bitmap allocated at install
    // it was ~6 KB.
    const N = 20_000;
    const before = process.memoryUsage().rss;
    for (let i = 0; i < N; i++)
      ex.installRxSa({ spi: 0x10000 + i, vpnId: 1, epoch: 1, sender: 'G2', key: K.key, salt: K.salt });
    const per = (process.memoryUsage().rss - before) / N;
    assert.ok(per < 4096, `${Math.round(per)} bytes per receiving SA`);
    // The window still works from the first packet on, and after the allocation.
    receiver(ex);
    const p = ping(B, A);
    assert.equal(ex.process('outside', refEncrypt(SA, 5n, p), 1).kind, 'forward');
    assert.equal(ex.process('outside', refEncrypt(SA, 5n, p), 1).kind, 'drop');
    assert.equal(ex.process('outside', refEncrypt(SA, 4n, p), 1).kind, 'forward');
  });

  it('reinstalling an SPI keeps its replay window', (t) => {
    const ex = newExecutor(t);
    if (!ex) return;
    receiver(ex);
    const e = refEncrypt(SA, 3n, ping(B, A));
    assert.equal(ex.process('outside', e, 1).kind, 'forward');
    receiver(ex);
    assert.deepEqual(ex.process('outside', e, 2), { kind: 'drop', reason: 'replay' });
    ex.removeRxSa(SPI);
    assert.deepEqual(ex.process('outside', e, 3), { kind: 'punt', reason: 'unknown-spi' });
  });

  it('auth-failed for a bad ICV, ciphertext or padding; the window does not move', (t) => {
    const ex = newExecutor(t);
    if (!ex) return;
    receiver(ex);
    const p = ping(B, A);
    for (const at of [-1, -17, 36]) {
      const e = refEncrypt(SA, 10n, p);
      e[at < 0 ? e.length + at : at] ^= 0x40;
      assert.deepEqual(ex.process('outside', e, 1), { kind: 'drop', reason: 'auth-failed' }, `byte ${at}`);
    }
    // Valid ICV over wrong padding bytes (2, 2 instead of 1, 2).
    const payload = p.subarray(20);
    const pad = (4 - ((payload.length + 2) % 4)) % 4 || 4;
    const bad = Uint8Array.from([...Array.from({ length: pad }, () => 2), pad, 1]);
    const esp = refEspSeal(SA, 11n, 1, payload, bad);
    const pkt = fixIpChecksum(Uint8Array.from([...p.subarray(0, 20), ...esp]));
    pkt[9] = 50;
    pkt[2] = pkt.length >> 8;
    pkt[3] = pkt.length & 0xff;
    fixIpChecksum(pkt);
    assert.deepEqual(ex.process('outside', pkt, 1), { kind: 'drop', reason: 'auth-failed' });
    // Pad length larger than the plaintext.
    const esp2 = refEspSeal(SA, 12n, 1, new Uint8Array(0), Uint8Array.of(0, 0, 9, 1));
    const pkt2 = fixIpChecksum(Uint8Array.from([...p.subarray(0, 20), ...esp2]));
    pkt2[9] = 50;
    pkt2[3] = pkt2.length;
    fixIpChecksum(pkt2);
    assert.deepEqual(ex.process('outside', pkt2, 1), { kind: 'drop', reason: 'auth-failed' });
    // The genuine packet with seq 10 is still accepted.
    assert.equal(ex.process('outside', refEncrypt(SA, 10n, p), 2).kind, 'forward');
    assert.equal(ex.pathStats(A, B)?.packets, 1);
  });

  it('malformed ESP headers, unknown SPI, VPN and peer mismatch, unsolicited plain', (t) => {
    const ex = newExecutor(t);
    if (!ex) return;
    receiver(ex);
    const p = ping(B, A);
    const espPacket = (esp: Uint8Array) => {
      const q = Uint8Array.from([...p.subarray(0, 20), ...esp]);
      q[9] = 50;
      q[2] = q.length >> 8;
      q[3] = q.length & 0xff;
      return fixIpChecksum(q);
    };
    const good = refEspSeal(SA, 5n, 1, p.subarray(20));
    assert.deepEqual(ex.process('outside', espPacket(good.subarray(0, 30)), 1), { kind: 'drop', reason: 'malformed' });
    const seq0 = refEspSeal(SA, 0n, 1, p.subarray(20));
    assert.deepEqual(ex.process('outside', espPacket(seq0), 1), { kind: 'drop', reason: 'malformed' });
    const disagree = Uint8Array.from(good);
    disagree[7] ^= 1; // header seq low 32 != IV low 32
    assert.deepEqual(ex.process('outside', espPacket(disagree), 1), { kind: 'drop', reason: 'malformed' });
    const other = refEspSeal({ ...SA, spi: 0x9999 }, 5n, 1, p.subarray(20));
    assert.deepEqual(ex.process('outside', espPacket(other), 1), { kind: 'punt', reason: 'unknown-spi' });
    assert.deepEqual(ex.process('outside', p, 1), { kind: 'drop', reason: 'unsolicited-plain' });
    // ESP in UDP: only to port 4500, and the UDP length must be the IP payload's.
    const inUdp = refEncrypt(SA, 20n, p);
    const otherPort = Uint8Array.from(inUdp);
    otherPort[23] ^= 1;
    assert.deepEqual(ex.process('outside', otherPort, 1), { kind: 'drop', reason: 'unsolicited-plain' });
    const badLength = Uint8Array.from(inUdp);
    badLength[25] ^= 4;
    assert.deepEqual(ex.process('outside', badLength, 1), { kind: 'drop', reason: 'malformed' });
    const badChecksum = Uint8Array.from(inUdp);
    badChecksum[26] = 0x12; // not checked (RFC 3948 §3.1): the ICV protects the content
    assert.equal(ex.process('outside', badChecksum, 1).kind, 'forward');
    ex.installPath({ local: A, remote: B, action: 'encrypt', vpnId: 1, peer: 'G3' });
    assert.deepEqual(ex.process('outside', espPacket(good), 1), { kind: 'drop', reason: 'peer-mismatch' });
    ex.installPath({ local: A, remote: B, action: 'encrypt', vpnId: 2, peer: 'G2' });
    assert.deepEqual(ex.process('outside', espPacket(good), 1), { kind: 'drop', reason: 'vpn-mismatch' });
    ex.installPath({ local: A, remote: B, action: 'plain' });
    const relayed = fwd(ex.process('outside', espPacket(good), 7));
    assert.equal(hex(relayed.bytes), hex(espPacket(good)));
    assert.deepEqual(relayed.note, { op: 'plain' });
    // ESP on a path without a rule is a miss.
    assert.deepEqual(ex.process('outside', refEncrypt(SA, 6n, ping('10.9.9.9', A)), 1), {
      kind: 'punt',
      reason: 'miss',
    });
  });
});

describe('native executor: rules, punts and counters', () => {
  it('miss, pending, discard, plain, search, malformed; stats only for disposed packets', (t) => {
    const ex = newExecutor(t);
    if (!ex) return;
    ex.installPath({ local: B, remote: '10.3.0.1', action: 'discard' });
    ex.installPath({ local: B, remote: '10.4.0.1', action: 'plain' });
    ex.installPath({ local: B, remote: '10.5.0.1', action: 'pending' });
    assert.deepEqual(ex.process('inside', ping(B, '10.6.0.1'), 1), { kind: 'punt', reason: 'miss' });
    assert.deepEqual(ex.process('inside', ping(B, '10.5.0.1'), 2), { kind: 'punt', reason: 'pending' });
    assert.deepEqual(ex.process('inside', ping(B, '10.3.0.1'), 3), { kind: 'drop', reason: 'discard' });
    const p = ping(B, '10.4.0.1');
    const v = fwd(ex.process('inside', p, 4));
    assert.equal(hex(v.bytes), hex(p));
    // Outside packets look the rule up with local = destination.
    assert.equal(ex.process('outside', ping('10.4.0.1', B), 5).kind, 'forward');
    assert.deepEqual(ex.process('outside', ping(B, '10.4.0.1'), 5), { kind: 'punt', reason: 'miss' });
    // Key-search echo (request or reply, data >= 8 bytes starting KSRC) is punted before any rule.
    const search = (type: 0 | 8, data: string) =>
      ipv4({
        src: B,
        dst: '10.3.0.1',
        proto: 1,
        payload: Uint8Array.from([type, 0, 0, 0, 0, 1, 0, 1, ...new TextEncoder().encode(data)]),
      });
    assert.deepEqual(ex.process('inside', search(8, 'KSRC....'), 6), { kind: 'punt', reason: 'search' });
    assert.deepEqual(ex.process('outside', search(0, 'KSRCxxxxyy'), 6), { kind: 'punt', reason: 'search' });
    assert.deepEqual(ex.process('inside', search(8, 'KSRC...'), 6), { kind: 'drop', reason: 'discard' }); // 7 bytes: not search
    assert.deepEqual(ex.process('inside', search(8, 'KSRX....'), 6), { kind: 'drop', reason: 'discard' });
    const bad = ping(B, '10.4.0.1');
    bad[10] ^= 1;
    assert.deepEqual(ex.process('inside', bad, 7), { kind: 'drop', reason: 'malformed' });
    assert.deepEqual(ex.process('inside', new Uint8Array(0), 7), { kind: 'drop', reason: 'malformed' });
    assert.equal(ex.pathStats(B, '10.5.0.1')?.packets, 0);
    assert.deepEqual(ex.pathStats(B, '10.3.0.1'), { packets: 3, bytes: 46 + 35 + 36, lastUsed: 6 });
    assert.deepEqual(ex.pathStats(B, '10.4.0.1'), { packets: 2, bytes: 2 * p.length, lastUsed: 5 });
    assert.equal(ex.pathStats(B, '10.6.0.1'), undefined);
    assert.deepEqual(ex.counters(), {
      'drop.malformed': 2,
      'drop.discard': 3,
      'punt.search': 2,
      'punt.miss': 2,
      'punt.pending': 1,
      'plain.packets': 2,
      'plain.bytes': 2 * p.length,
    });
    // Reinstalling keeps counters; removing forgets the rule.
    ex.installPath({ local: B, remote: '10.3.0.1', action: 'plain' });
    assert.equal(ex.pathStats(B, '10.3.0.1')?.packets, 3);
    ex.removePath(B, '10.3.0.1');
    assert.equal(ex.pathStats(B, '10.3.0.1'), undefined);
    assert.deepEqual(ex.process('inside', ping(B, '10.3.0.1'), 8), { kind: 'punt', reason: 'miss' });
    const all = ex.allPathStats().sort((a, b) => a.remote.localeCompare(b.remote));
    assert.deepEqual(
      all.map((s) => [s.local, s.remote, s.action, s.packets]),
      [
        [B, '10.4.0.1', 'plain', 2],
        [B, '10.5.0.1', 'pending', 0],
      ],
    );
  });

  it('IPv6 rules are keyed separately and IPv4-mapped lookups do not collide', (t) => {
    const ex = newExecutor(t);
    if (!ex) return;
    ex.installPath({ local: 'fd00::1', remote: 'fd00::2', action: 'plain' });
    assert.deepEqual(ex.pathStats('fd00::1', 'fd00::2'), { packets: 0, bytes: 0, lastUsed: 0 });
    assert.equal(ex.pathStats('0.0.0.0', '0.0.0.0'), undefined);
    assert.throws(() => ex.installPath({ local: 'fd00::1', remote: '10.0.0.1', action: 'plain' }), RangeError);
  });

  it('never throws on arbitrary bytes and counts every packet once (property)', (t) => {
    const ex = newExecutor(t);
    if (!ex) return;
    sender(ex, 600);
    receiver(ex);
    ex.installPath({ local: B, remote: '10.4.0.1', action: 'plain' });
    let n = 0;
    const valid = (p: Uint8Array) => p.length >= 20 && p[0] >> 4 === 4;
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 200 }),
          // Valid headers with random payloads and protocols: reach the deeper paths.
          fc
            .record({
              proto: fc.constantFrom(1, 6, 17, 50),
              payload: fc.uint8Array({ maxLength: 120 }),
              dir: fc.boolean(),
              df: fc.boolean(),
            })
            .map((r) => ipv4({ src: r.dir ? B : A, dst: r.dir ? A : B, proto: r.proto, payload: r.payload, df: r.df })),
        ),
        fc.boolean(),
        (p, inside) => {
          const v = ex.process(inside ? 'inside' : 'outside', p, 1);
          n++;
          assert.ok(['forward', 'drop', 'punt'].includes(v.kind));
          if (v.kind === 'forward') assert.ok(valid(v.bytes) && ipHeaderOk(v.bytes));
        },
      ),
      { numRuns: 2000 },
    );
    const c = ex.counters();
    const verdicts = Object.entries(c)
      .filter(([k]) => k.startsWith('drop.') || k.startsWith('punt.') || k.endsWith('.packets'))
      .reduce((s, [, v]) => s + v, 0);
    assert.equal(verdicts, n);
  });

  it('encrypt then decrypt returns the packet for any payload and protocol (property)', (t) => {
    const pair = executors(t);
    if (!pair) return;
    const { ex: tx, rx } = pair;
    let seq = 0n;
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 1500 }),
        fc.integer({ min: 0, max: 255 }),
        fc.integer({ min: 0, max: 0xffff }),
        fc.boolean(),
        (payload, proto, id, df) => {
          const p = ipv4({ src: B, dst: A, proto: proto === 1 ? 2 : proto, payload, id, df });
          const e = fwd(tx.process('inside', p, 1));
          seq++;
          // IP in IP (protocol 4) always goes in the carried form: next header 4 means the whole packet.
          assert.equal(hex(e.bytes), hex((df && proto !== 4 ? refEncrypt : refEncryptCarried)(SA, seq, p)));
          const d = fwd(rx.process('outside', e.bytes, 1));
          assert.equal(hex(d.bytes), hex(p));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('rejects bad install arguments', (t) => {
    const ex = newExecutor(t);
    if (!ex) return;
    assert.throws(() =>
      ex.installTxSa({ spi: 1, vpnId: 1, epoch: 1, key: new Uint8Array(31), salt: new Uint8Array(4), nextSeq: 1n }),
    );
    assert.throws(() =>
      ex.installTxSa({ spi: 1, vpnId: 1, epoch: 1, key: new Uint8Array(32), salt: new Uint8Array(4), nextSeq: 0n }),
    );
    assert.throws(() =>
      ex.installTxSa({
        spi: 1,
        vpnId: 1,
        epoch: 1,
        key: new Uint8Array(32),
        salt: new Uint8Array(4),
        nextSeq: 1n << 64n,
      }),
    );
    assert.throws(() =>
      ex.installRxSa({
        spi: 1,
        vpnId: 1,
        epoch: 1,
        sender: 'x'.repeat(64),
        key: new Uint8Array(32),
        salt: new Uint8Array(4),
      }),
    );
    assert.throws(() =>
      ex.installRxSa({ spi: -1, vpnId: 1, epoch: 1, sender: 'G', key: new Uint8Array(32), salt: new Uint8Array(4) }),
    );
  });
});
