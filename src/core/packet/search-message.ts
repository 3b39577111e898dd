// The kasane key-search payload, version 2, carried as the data of an ICMP echo request/reply
// (see docs/protocol.md). Decoding takes untrusted bytes and never throws.
import { ipFromBytes, ipToBytes, parseIp, type Ip } from '../../base/addr.js';
import { err, ok, type Result } from '../../base/result.js';

export const SEARCH_MAGIC: Uint8Array = Uint8Array.of(0x4b, 0x53, 0x52, 0x43); // "KSRC"
export const SEARCH_VERSION = 2;
export const SEARCH_MAX_ENTRIES = 32;
export const SEARCH_MAX_VPNS = 32;
export const GATEWAY_ID_MAX_BYTES = 63;
export const SEARCH_TXID_BYTES = 8;
export const SEARCH_PROOF_BYTES = 16;

export type SearchPhase = 'source' | 'destination';

export interface SearchVpnClaim {
  vpnId: number;
  epoch: number;
  /**
   * The claiming gateway's next sending sequence number under (vpnId, epoch) when it made the
   * claim: a restarted receiver's window floor for its SA (docs/protocol.md §3.2). 0 when it has
   * none (pairwise claims).
   */
  seq: bigint;
  /** 16 bytes. */
  proof: Uint8Array;
}

/** Bytes of one VPN claim on the wire: vpnId u32, epoch u32, seq u64, proof. */
const CLAIM_BYTES = 4 + 4 + 8 + SEARCH_PROOF_BYTES;
const U64_MAX = (1n << 64n) - 1n;

export interface SearchEntry {
  side: 'src' | 'dst';
  gateway: string;
  address: Ip;
  vpns: SearchVpnClaim[];
}

export interface SearchMessage {
  phase: SearchPhase;
  proxied: boolean;
  /** 8 bytes. */
  txid: Uint8Array;
  pathSrc: Ip;
  pathDst: Ip;
  originator: string;
  /** '' when not proxied. */
  proxiedBy: string;
  entries: SearchEntry[];
}

const FLAG_PROXIED = 0x01;
const PHASE_SOURCE = 1;
const PHASE_DESTINATION = 2;
const SIDE_SRC = 1;
const SIDE_DST = 2;
const FAMILY_V4 = 4;
const FAMILY_V6 = 6;
const FIXED_HEADER = 16;

const encoder = new TextEncoder();
const strictDecoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
// Cc: C0, DEL, C1. Cs: lone surrogates, which UTF-8 cannot carry.
const CONTROL = /\p{Cc}/u;
const LONE_SURROGATE = /\p{Cs}/u;

/** Cheap per-packet test: at least the fixed prefix, and the magic matches. */
export function isSearchPayload(data: Uint8Array): boolean {
  return data.length >= 8 && data[0] === 0x4b && data[1] === 0x53 && data[2] === 0x52 && data[3] === 0x43;
}

/** A gateway id: UTF-8, 1..63 bytes, no control characters. */
export function validateGatewayId(id: string): Result<string> {
  if (typeof id !== 'string' || id.length === 0) return err('bad-length', 'gateway id is empty');
  if (LONE_SURROGATE.test(id)) return err('bad-utf8', 'gateway id is not valid Unicode (lone surrogate)');
  const n = encoder.encode(id).length;
  if (n > GATEWAY_ID_MAX_BYTES)
    return err('bad-length', `gateway id is ${n} bytes of UTF-8, more than ${GATEWAY_ID_MAX_BYTES}`);
  if (CONTROL.test(id)) return err('bad-gateway-id', `gateway id ${JSON.stringify(id)} contains a control character`);
  return ok(id);
}

const HEX: string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

export function txidHex(txid: Uint8Array): string {
  let s = '';
  for (let i = 0; i < txid.length; i++) s += HEX[txid[i]];
  return s;
}

// ---- encoding ----

function fail(what: string): never {
  throw new TypeError(`invalid search message: ${what}`);
}

function idBytes(id: string, what: string, allowEmpty: boolean): Uint8Array {
  if (allowEmpty && id === '') return new Uint8Array(0);
  const v = validateGatewayId(id);
  if (!v.ok) fail(`${what}: ${v.error.message}`);
  return encoder.encode(id);
}

function addrBytes(ip: Ip, what: string): Uint8Array {
  if (typeof ip !== 'string' || !parseIp(ip).ok) fail(`${what}: not an IP address: ${JSON.stringify(ip)}`);
  return ipToBytes(ip);
}

function u32(n: number, what: string): number {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) fail(`${what} ${n} is not a u32`);
  return n;
}

/** Encodes a message. Throws (TypeError) only on programmer error: a field out of its range. */
export function encodeSearchMessage(m: SearchMessage): Uint8Array {
  if (m.phase !== 'source' && m.phase !== 'destination') fail(`phase ${String(m.phase)}`);
  if (!(m.txid instanceof Uint8Array) || m.txid.length !== SEARCH_TXID_BYTES) fail('txid must be 8 bytes');
  if (m.entries.length > SEARCH_MAX_ENTRIES) fail(`${m.entries.length} entries, at most ${SEARCH_MAX_ENTRIES}`);
  if (m.proxied !== (m.proxiedBy !== '')) fail('proxiedBy must be set exactly when proxied');
  const src = addrBytes(m.pathSrc, 'pathSrc');
  const dst = addrBytes(m.pathDst, 'pathDst');
  const originator = idBytes(m.originator, 'originator', false);
  const proxiedBy = idBytes(m.proxiedBy, 'proxiedBy', true);

  let size = FIXED_HEADER + 2 + src.length + dst.length + 2 + originator.length + proxiedBy.length;
  const entries = m.entries.map((e, i) => {
    if (e.side !== 'src' && e.side !== 'dst') fail(`entry ${i}: side ${String(e.side)}`);
    if (e.vpns.length > SEARCH_MAX_VPNS) fail(`entry ${i}: ${e.vpns.length} VPNs, at most ${SEARCH_MAX_VPNS}`);
    for (const c of e.vpns) {
      u32(c.vpnId, `entry ${i}: vpnId`);
      u32(c.epoch, `entry ${i}: epoch`);
      if (typeof c.seq !== 'bigint' || c.seq < 0n || c.seq > U64_MAX)
        fail(`entry ${i}: seq ${String(c.seq)} is not a u64`);
      if (!(c.proof instanceof Uint8Array) || c.proof.length !== SEARCH_PROOF_BYTES)
        fail(`entry ${i}: proof must be 16 bytes`);
    }
    const gateway = idBytes(e.gateway, `entry ${i}: gateway`, false);
    const address = addrBytes(e.address, `entry ${i}: address`);
    size += 1 + 1 + gateway.length + 1 + address.length + 1 + e.vpns.length * CLAIM_BYTES;
    return { gateway, address };
  });

  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  out.set(SEARCH_MAGIC, 0);
  out[4] = SEARCH_VERSION;
  out[5] = m.phase === 'source' ? PHASE_SOURCE : PHASE_DESTINATION;
  out[6] = m.proxied ? FLAG_PROXIED : 0;
  out[7] = m.entries.length;
  out.set(m.txid, 8);
  let o = FIXED_HEADER;
  const putAddr = (b: Uint8Array): void => {
    out[o++] = b.length === 4 ? FAMILY_V4 : FAMILY_V6;
    out.set(b, o);
    o += b.length;
  };
  const putStr = (b: Uint8Array): void => {
    out[o++] = b.length;
    out.set(b, o);
    o += b.length;
  };
  putAddr(src);
  putAddr(dst);
  putStr(originator);
  putStr(proxiedBy);
  m.entries.forEach((e, i) => {
    out[o++] = e.side === 'src' ? SIDE_SRC : SIDE_DST;
    putStr(entries[i].gateway);
    putAddr(entries[i].address);
    out[o++] = e.vpns.length;
    for (const c of e.vpns) {
      view.setUint32(o, c.vpnId);
      view.setUint32(o + 4, c.epoch);
      view.setBigUint64(o + 8, c.seq);
      out.set(c.proof, o + 16);
      o += CLAIM_BYTES;
    }
  });
  return out;
}

// ---- decoding ----

/** Decoding failure carried out of the nested readers without exceptions. */
type Fail = { ok: false; error: { code: string; message: string } };

class Reader {
  off: number;
  failure: Fail | undefined;
  constructor(
    readonly buf: Uint8Array,
    off: number,
  ) {
    this.off = off;
  }

  fail(code: string, message: string): void {
    if (this.failure === undefined) this.failure = err(code, message);
  }

  /** True when `n` more bytes are available; records 'truncated' otherwise. */
  need(n: number, what: string): boolean {
    if (this.failure !== undefined) return false;
    if (this.off + n <= this.buf.length) return true;
    this.fail('truncated', `search message truncated in ${what} at byte ${this.off}`);
    return false;
  }

  u8(what: string): number {
    if (!this.need(1, what)) return 0;
    return this.buf[this.off++];
  }

  address(what: string): Ip {
    const family = this.u8(what);
    if (this.failure !== undefined) return '';
    if (family !== FAMILY_V4 && family !== FAMILY_V6) {
      this.fail('bad-family', `${what}: address family ${family}, expected 4 or 6`);
      return '';
    }
    const n = family === FAMILY_V4 ? 4 : 16;
    if (!this.need(n, what)) return '';
    const ip = ipFromBytes(this.buf, this.off, family === FAMILY_V4 ? 4 : 6);
    this.off += n;
    return ip;
  }

  gatewayId(what: string, allowEmpty: boolean): string {
    const n = this.u8(what);
    if (this.failure !== undefined) return '';
    if (n === 0 && allowEmpty) return '';
    if (n === 0 || n > GATEWAY_ID_MAX_BYTES) {
      this.fail('bad-length', `${what}: length ${n}, expected ${allowEmpty ? 0 : 1}..${GATEWAY_ID_MAX_BYTES}`);
      return '';
    }
    if (!this.need(n, what)) return '';
    let s: string;
    try {
      s = strictDecoder.decode(this.buf.subarray(this.off, this.off + n));
    } catch {
      this.fail('bad-utf8', `${what} is not valid UTF-8`);
      return '';
    }
    this.off += n;
    if (CONTROL.test(s)) this.fail('bad-gateway-id', `${what} contains a control character`);
    return s;
  }
}

/** Decodes a search payload (the ICMP echo data). */
export function decodeSearchMessage(data: Uint8Array): Result<SearchMessage> {
  const magicBytes = Math.min(4, data.length);
  for (let i = 0; i < magicBytes; i++)
    if (data[i] !== SEARCH_MAGIC[i]) return err('bad-magic', 'not a kasane search message');
  if (data.length < 5) return err('truncated', `search message of ${data.length} bytes`);
  if (data[4] !== SEARCH_VERSION)
    return err('unsupported-version', `search message version ${data[4]}, expected ${SEARCH_VERSION}`);
  if (data.length < FIXED_HEADER)
    return err('truncated', `search message of ${data.length} bytes is shorter than its fixed header`);
  const phaseByte = data[5];
  if (phaseByte !== PHASE_SOURCE && phaseByte !== PHASE_DESTINATION)
    return err('bad-phase', `search phase ${phaseByte}`);
  const flags = data[6];
  if ((flags & ~FLAG_PROXIED) !== 0) return err('bad-flags', `reserved search flags set: 0x${flags.toString(16)}`);
  const count = data[7];
  if (count > SEARCH_MAX_ENTRIES) return err('too-many-entries', `${count} entries, at most ${SEARCH_MAX_ENTRIES}`);

  const r = new Reader(data, FIXED_HEADER);
  const pathSrc = r.address('pathSrc');
  const pathDst = r.address('pathDst');
  const originator = r.gatewayId('originator', false);
  const proxiedBy = r.gatewayId('proxiedBy', true);
  if (r.failure) return r.failure;
  const proxied = (flags & FLAG_PROXIED) !== 0;
  if (proxied !== (proxiedBy !== '')) {
    return err(
      'bad-proxied',
      proxied ? 'proxied flag set without proxiedBy' : 'proxiedBy present without the proxied flag',
    );
  }

  const entries: SearchEntry[] = new Array(count);
  for (let i = 0; i < count; i++) {
    const sideByte = r.u8(`entry ${i} side`);
    if (r.failure) return r.failure;
    if (sideByte !== SIDE_SRC && sideByte !== SIDE_DST) return err('bad-side', `entry ${i}: side ${sideByte}`);
    const gateway = r.gatewayId(`entry ${i} gateway`, false);
    const address = r.address(`entry ${i} address`);
    const nv = r.u8(`entry ${i} VPN count`);
    if (r.failure) return r.failure;
    if (nv > SEARCH_MAX_VPNS) return err('too-many-vpns', `entry ${i}: ${nv} VPNs, at most ${SEARCH_MAX_VPNS}`);
    if (!r.need(nv * CLAIM_BYTES, `entry ${i} VPNs`)) return r.failure!;
    const vpns: SearchVpnClaim[] = new Array(nv);
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    for (let k = 0; k < nv; k++) {
      const o = r.off;
      vpns[k] = {
        vpnId: view.getUint32(o),
        epoch: view.getUint32(o + 4),
        seq: view.getBigUint64(o + 8),
        // Copied: decoded messages outlive the packet buffer they came from.
        proof: data.slice(o + 16, o + 16 + SEARCH_PROOF_BYTES),
      };
      r.off = o + CLAIM_BYTES;
    }
    entries[i] = { side: sideByte === SIDE_SRC ? 'src' : 'dst', gateway, address, vpns };
  }
  if (r.off !== data.length) return err('trailing-bytes', `${data.length - r.off} bytes after the last entry`);

  return ok({
    phase: phaseByte === PHASE_SOURCE ? 'source' : 'destination',
    proxied,
    txid: data.slice(8, 16),
    pathSrc,
    pathDst,
    originator,
    proxiedBy,
    entries,
  });
}
