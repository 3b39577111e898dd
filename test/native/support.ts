// Test support for the native addon: the addon itself (or a clear skip/fail), small packet builders
// and an independent ESP/AES-256-GCM implementation on node:crypto, written from the format in
// docs/executor.md so the C code is checked against something that shares none of it.
import assert from 'node:assert/strict';
import { createCipheriv, createDecipheriv } from 'node:crypto';
import type { TestContext } from 'node:test';
import type { Verdict } from '../../src/core/executor.js';
import { loadNative, type NativeBinding } from '../../src/native/binding.js';
import { NativeExecutor } from '../../src/native/native-executor.js';

export const inCi = process.env.CI === 'true';

/** The addon, or undefined after marking the test skipped. In CI a missing addon is a failure. */
export function nativeOrSkip(t: TestContext): NativeBinding | undefined {
  const b = loadNative();
  if (b.ok) return b.value;
  if (inCi) throw new Error(`CI=true but the native addon is unavailable: ${b.error.message}`);
  t.skip(b.error.message);
  return undefined;
}

export function newExecutor(t: TestContext): NativeExecutor | undefined {
  if (!nativeOrSkip(t)) return undefined;
  const e = NativeExecutor.create();
  if (!e.ok) throw new Error(e.error.message);
  return e.value;
}

// ---- checksums and packets ----

export function sum16(b: Uint8Array, off = 0, len = b.length - off, init = 0): number {
  let s = init;
  for (let i = 0; i + 1 < len; i += 2) s += (b[off + i] << 8) | b[off + i + 1];
  if (len & 1) s += b[off + len - 1] << 8;
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return s;
}

export function checksum(b: Uint8Array, off = 0, len = b.length - off, init = 0): number {
  return ~sum16(b, off, len, init) & 0xffff;
}

export function v4(ip: string): number[] {
  return ip.split('.').map(Number);
}

export interface Ipv4Opts {
  src: string;
  dst: string;
  proto: number;
  payload: Uint8Array;
  id?: number;
  ttl?: number;
  tos?: number;
  df?: boolean;
  mf?: boolean;
  fragOffset?: number;
  options?: Uint8Array;
}

export function ipv4(o: Ipv4Opts): Uint8Array {
  const opt = o.options ?? new Uint8Array(0);
  const hl = 20 + opt.length;
  const p = new Uint8Array(hl + o.payload.length);
  p[0] = 0x40 | (hl / 4);
  p[1] = o.tos ?? 0;
  p[2] = p.length >> 8;
  p[3] = p.length & 0xff;
  p[4] = (o.id ?? 0x1234) >> 8;
  p[5] = (o.id ?? 0x1234) & 0xff;
  const flags = (o.df ? 0x4000 : 0) | (o.mf ? 0x2000 : 0) | ((o.fragOffset ?? 0) & 0x1fff);
  p[6] = flags >> 8;
  p[7] = flags & 0xff;
  p[8] = o.ttl ?? 64;
  p[9] = o.proto;
  p.set(v4(o.src), 12);
  p.set(v4(o.dst), 16);
  p.set(opt, 20);
  const c = checksum(p, 0, hl);
  p[10] = c >> 8;
  p[11] = c & 0xff;
  p.set(o.payload, hl);
  return p;
}

export function fixIpChecksum(p: Uint8Array): Uint8Array {
  const hl = (p[0] & 15) * 4;
  p[10] = p[11] = 0;
  const c = checksum(p, 0, hl);
  p[10] = c >> 8;
  p[11] = c & 0xff;
  return p;
}

export function icmpEcho(type: 0 | 8, id: number, seq: number, data: Uint8Array): Uint8Array {
  const m = new Uint8Array(8 + data.length);
  m[0] = type;
  m[4] = id >> 8;
  m[5] = id & 0xff;
  m[6] = seq >> 8;
  m[7] = seq & 0xff;
  m.set(data, 8);
  const c = checksum(m);
  m[2] = c >> 8;
  m[3] = c & 0xff;
  return m;
}

export function ping(src: string, dst: string, seq = 1, data = 'kasane native test', df = false): Uint8Array {
  return ipv4({ src, dst, proto: 1, payload: icmpEcho(8, 0x77, seq, new TextEncoder().encode(data)), df });
}

export interface TcpOpts {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  seq: number;
  ack?: number;
  flags: number;
  options?: Uint8Array;
  payload?: Uint8Array;
  df?: boolean;
  id?: number;
}

/** TCP in IPv4 with a correct checksum. Options are padded with EOL to 4 bytes. */
export function tcp(o: TcpOpts): Uint8Array {
  const opt = o.options ?? new Uint8Array(0);
  const optLen = (opt.length + 3) & ~3;
  const payload = o.payload ?? new Uint8Array(0);
  const t = new Uint8Array(20 + optLen + payload.length);
  t[0] = o.sport >> 8;
  t[1] = o.sport & 0xff;
  t[2] = o.dport >> 8;
  t[3] = o.dport & 0xff;
  new DataView(t.buffer).setUint32(4, o.seq >>> 0);
  new DataView(t.buffer).setUint32(8, (o.ack ?? 0) >>> 0);
  t[12] = ((20 + optLen) / 4) << 4;
  t[13] = o.flags;
  t[14] = 0xff;
  t[15] = 0xff;
  t.set(opt, 20);
  t.set(payload, 20 + optLen);
  const c = checksum(t, 0, t.length, tcpPseudo(o.src, o.dst, t.length));
  t[16] = c >> 8;
  t[17] = c & 0xff;
  return ipv4({ src: o.src, dst: o.dst, proto: 6, payload: t, df: o.df ?? true, id: o.id });
}

export function tcpPseudo(src: string, dst: string, len: number): number {
  return sum16(Uint8Array.from([...v4(src), ...v4(dst), 0, 6, len >> 8, len & 0xff]));
}

/** True when the TCP checksum of an IPv4 packet verifies. */
export function tcpOk(p: Uint8Array): boolean {
  const hl = (p[0] & 15) * 4;
  const tot = (p[2] << 8) | p[3];
  const src = Array.from(p.subarray(12, 16)).join('.');
  const dst = Array.from(p.subarray(16, 20)).join('.');
  return checksum(p, hl, tot - hl, tcpPseudo(src, dst, tot - hl)) === 0;
}

export function ipHeaderOk(p: Uint8Array): boolean {
  return checksum(p, 0, (p[0] & 15) * 4) === 0;
}

/** The MSS option of a TCP segment in IPv4, or undefined. */
export function mssOf(p: Uint8Array): number | undefined {
  const t = (p[0] & 15) * 4;
  const end = t + (p[t + 12] >> 4) * 4;
  for (let i = t + 20; i < end;) {
    if (p[i] === 0) break;
    if (p[i] === 1) {
      i++;
      continue;
    }
    if (p[i] === 2 && p[i + 1] === 4) return (p[i + 2] << 8) | p[i + 3];
    i += Math.max(2, p[i + 1]);
  }
  return undefined;
}

// ---- independent ESP (RFC 4303 + RFC 4106, bump in the wire) ----

export interface RefSa {
  spi: number;
  key: Uint8Array;
  salt: Uint8Array;
}

function seqBytes(seq: bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, seq);
  return b;
}

/** ESP payload for an IP payload; `trailer` overrides padding/pad length/next header (for bad-padding tests). */
export function refEspSeal(sa: RefSa, seq: bigint, nh: number, payload: Uint8Array, trailer?: Uint8Array): Uint8Array {
  const pad = (4 - ((payload.length + 2) % 4)) % 4;
  const tr = trailer ?? Uint8Array.from([...Array.from({ length: pad }, (_, i) => i + 1), pad, nh]);
  const pt = Buffer.concat([payload, tr]);
  const iv = seqBytes(seq);
  const hdr = new Uint8Array(8);
  new DataView(hdr.buffer).setUint32(0, sa.spi);
  new DataView(hdr.buffer).setUint32(4, Number(seq & 0xffffffffn));
  const c = createCipheriv('aes-256-gcm', sa.key, Buffer.concat([sa.salt, iv]));
  c.setAAD(Buffer.concat([hdr.subarray(0, 4), iv]));
  const ct = Buffer.concat([c.update(pt), c.final()]);
  return Buffer.concat([hdr, iv, ct, c.getAuthTag()]);
}

/** The inner payload and next header of an ESP payload, or undefined when it does not verify. */
export function refEspOpen(sa: RefSa, esp: Uint8Array): { seq: bigint; nh: number; payload: Uint8Array } | undefined {
  const iv = esp.subarray(8, 16);
  const d = createDecipheriv('aes-256-gcm', sa.key, Buffer.concat([sa.salt, iv]));
  d.setAAD(Buffer.concat([esp.subarray(0, 4), iv]));
  d.setAuthTag(esp.subarray(esp.length - 16));
  try {
    const pt = Buffer.concat([d.update(esp.subarray(16, esp.length - 16)), d.final()]);
    const padLen = pt[pt.length - 2];
    return {
      seq: new DataView(iv.buffer, iv.byteOffset).getBigUint64(0),
      nh: pt[pt.length - 1],
      payload: pt.subarray(0, pt.length - 2 - padLen),
    };
  } catch {
    return undefined;
  }
}

/** Bump-in-the-wire: the packet's header with protocol 50 and the ESP payload. */
/** The group ESP encapsulations (docs/executor.md): ESP in UDP 4500 -> 4500 (the default) or raw ESP. */
export type RefEncap = 'udp' | 'esp';

/** ESP behind a UDP header 4500 -> 4500 with checksum 0 (RFC 3948 §3.1), or raw. */
export function encapsulate(esp: Uint8Array, encap: RefEncap): Uint8Array {
  if (encap === 'esp') return esp;
  const out = new Uint8Array(8 + esp.length);
  out.set([0x11, 0x94, 0x11, 0x94, out.length >> 8, out.length & 0xff, 0, 0]);
  out.set(esp, 8);
  return out;
}

/** Where the ESP starts in a group packet made by refEncrypt/refEncryptCarried (after the IP and UDP headers). */
export function espOffset(packet: Uint8Array): number {
  const hl = (packet[0] & 15) * 4;
  return packet[9] === 17 ? hl + 8 : hl;
}

export function refEncrypt(sa: RefSa, seq: bigint, packet: Uint8Array, encap: RefEncap = 'udp'): Uint8Array {
  const hl = (packet[0] & 15) * 4;
  const tot = (packet[2] << 8) | packet[3];
  const body = encapsulate(refEspSeal(sa, seq, packet[9], packet.subarray(hl, tot)), encap);
  const out = new Uint8Array(hl + body.length);
  out.set(packet.subarray(0, hl));
  out[9] = encap === 'udp' ? 17 : 50;
  out[2] = out.length >> 8;
  out[3] = out.length & 0xff;
  out.set(body, hl);
  return fixIpChecksum(out);
}

/**
 * The carried form (docs/executor.md): a 20-byte outer header (the inner TOS, id and TTL, DF,
 * protocol 17 or 50, the same addresses) in front of (UDP and) ESP whose payload is the whole inner packet.
 */
export function refEncryptCarried(sa: RefSa, seq: bigint, packet: Uint8Array, encap: RefEncap = 'udp'): Uint8Array {
  const tot = (packet[2] << 8) | packet[3];
  const body = encapsulate(refEspSeal(sa, seq, 4, packet.subarray(0, tot)), encap);
  const out = new Uint8Array(20 + body.length);
  out[0] = 0x45;
  out[1] = packet[1];
  out[2] = out.length >> 8;
  out[3] = out.length & 0xff;
  out[4] = packet[4];
  out[5] = packet[5];
  out[6] = 0x40;
  out[8] = packet[8];
  out[9] = encap === 'udp' ? 17 : 50;
  out.set(packet.subarray(12, 20), 12);
  out.set(body, 20);
  return fixIpChecksum(out);
}

/**
 * The datagram the fragments make (RFC 791 reassembly, fragments in any order; the header of the
 * first). Fragments of a fragment make that fragment again (its offset, and MF when it had it).
 */
export function reassemble(fragments: Uint8Array[]): Uint8Array {
  const parts = fragments.map((f) => {
    const hl = (f[0] & 15) * 4;
    const field = (f[6] << 8) | f[7];
    return { f, hl, off: (field & 0x1fff) * 8, mf: (field & 0x2000) !== 0, data: f.subarray(hl, (f[2] << 8) | f[3]) };
  });
  parts.sort((a, b) => a.off - b.off);
  const first = parts[0];
  let at = first.off;
  for (const p of parts) {
    assert.equal(p.off, at, 'fragments leave no hole and do not overlap');
    at += p.data.length;
  }
  const out = new Uint8Array(first.hl + at - first.off);
  out.set(first.f.subarray(0, first.hl));
  for (const p of parts) out.set(p.data, first.hl + p.off - first.off);
  out[2] = out.length >> 8;
  out[3] = out.length & 0xff;
  const field = ((out[6] & 0x40) << 8) | (parts[parts.length - 1].mf ? 0x2000 : 0) | (first.off / 8);
  out[6] = field >> 8;
  out[7] = field & 0xff;
  return fixIpChecksum(out);
}

export function hex(b: Uint8Array): string {
  return Buffer.from(b).toString('hex');
}

export function randomKey(seed: number): { key: Uint8Array; salt: Uint8Array } {
  const key = new Uint8Array(32).map((_, i) => (i * 31 + seed * 17 + 3) & 0xff);
  const salt = new Uint8Array(4).map((_, i) => (i * 7 + seed) & 0xff);
  return { key, salt };
}

/** Expects a forward verdict; the whole verdict in the message otherwise. */
export function fwd(v: Verdict): Extract<Verdict, { kind: 'forward' }> {
  assert.equal(
    v.kind,
    'forward',
    `expected a forward, got ${JSON.stringify(v, (_, x) => (typeof x === 'bigint' ? String(x) : x))}`,
  );
  return v as Extract<Verdict, { kind: 'forward' }>;
}

/**
 * One group SA of VPN 1 (`spi`, keys from `seed`) between terminals A and B: `sender` installs it on
 * B's gateway G2 with the path B -> A to G1, `receiver` on A's gateway G1 with the path A -> B to G2.
 */
export function groupSa(a: string, b: string, spi: number, seed: number) {
  const K = randomKey(seed);
  const SA: RefSa = { spi, ...K };
  const sender = (ex: NativeExecutor, mtu?: number, encapsulation?: 'esp'): void => {
    ex.installTxSa({ spi, vpnId: 1, epoch: 1, key: K.key, salt: K.salt, nextSeq: 1n, encapsulation });
    ex.installPath({ local: b, remote: a, action: 'encrypt', vpnId: 1, peer: 'G1', mtu });
  };
  const receiver = (ex: NativeExecutor): void => {
    ex.installRxSa({ spi, vpnId: 1, epoch: 1, sender: 'G2', key: K.key, salt: K.salt });
    ex.installPath({ local: a, remote: b, action: 'encrypt', vpnId: 1, peer: 'G2' });
  };
  /** A sender (`mtu` on its path) and a receiver, each an executor of its own; undefined after a skip. */
  const pair = (t: TestContext, mtu?: number): { ex: NativeExecutor; rx: NativeExecutor } | undefined => {
    const ex = newExecutor(t);
    const rx = newExecutor(t);
    if (!ex || !rx) return undefined;
    sender(ex, mtu);
    receiver(rx);
    return { ex, rx };
  };
  return { K, SA, sender, receiver, pair };
}
