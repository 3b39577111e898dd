// ECDSA signature values in DER (Ecdsa-Sig-Value, RFC 3279 §2.2.3): tokens (PKCS#11 CKM_ECDSA)
// return r | s, while X.509 and IKEv2 AUTH (RFC 7427) carry the DER form. Written by hand because it
// is two INTEGERs in a SEQUENCE, checked on every AUTH, and an ASN.1 library would cost more than it
// checks here.

function derLength(n: number): Buffer {
  if (n < 0x80) return Buffer.of(n);
  if (n < 0x100) return Buffer.of(0x81, n);
  return Buffer.of(0x82, n >> 8, n & 0xff);
}

function derInteger(unsigned: Uint8Array): Buffer {
  let i = 0;
  while (i < unsigned.length - 1 && unsigned[i] === 0) i++;
  const v = unsigned.subarray(i);
  const body = v[0] & 0x80 ? Buffer.concat([Buffer.of(0), v]) : Buffer.from(v);
  return Buffer.concat([Buffer.of(0x02), derLength(body.length), body]);
}

/** r | s (as PKCS#11 CKM_ECDSA returns it) to the DER Ecdsa-Sig-Value. */
export function ecdsaRawToDer(raw: Uint8Array): Buffer {
  if (raw.length === 0 || raw.length % 2 !== 0)
    throw new RangeError('raw ECDSA signature must be r | s of equal lengths');
  const half = raw.length / 2;
  const seq = Buffer.concat([derInteger(raw.subarray(0, half)), derInteger(raw.subarray(half))]);
  return Buffer.concat([Buffer.of(0x30), derLength(seq.length), seq]);
}

/** Reads one DER TLV header at `at`; returns the value's bounds or undefined. */
function derTlv(b: Uint8Array, at: number, tag: number): { start: number; end: number } | undefined {
  if (at + 2 > b.length || b[at] !== tag) return undefined;
  let len = b[at + 1];
  let start = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n < 1 || n > 2 || start + n > b.length) return undefined;
    len = 0;
    for (let i = 0; i < n; i++) len = (len << 8) | b[start + i];
    start += n;
  }
  return start + len <= b.length ? { start, end: start + len } : undefined;
}

/** True when `sig` is structurally SEQUENCE { INTEGER, INTEGER } with nothing after it. */
export function isDerEcdsaSignature(sig: Uint8Array): boolean {
  const seq = derTlv(sig, 0, 0x30);
  if (!seq || seq.end !== sig.length) return false;
  const r = derTlv(sig, seq.start, 0x02);
  if (!r || r.end === r.start) return false;
  const s = derTlv(sig, r.end, 0x02);
  return !!s && s.end > s.start && s.end === seq.end;
}
