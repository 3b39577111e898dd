// Tunnel-mode ESP of pairwise VPNs' IKE Child SAs (RFC 4303 tunnel mode, RFC 4106 AES-GCM-16,
// 32-bit sequence numbers, no ESN):
//
//   SPI (4) | seq (4) | IV (8) = seq as a 64-bit counter |
//   AES-GCM(inner packet | padding 1,2,3.. | pad length | next header) | ICV (16)
//   nonce = salt || IV;  AAD = SPI || seq
//
// Receivers take the IV from the packet and do not assume it is the sequence number. The outer
// IP and UDP headers (RFC 3948) are the executor's (docs/executor.md, "Tunnel mode").
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { rd32, wr32 } from '../base/bytes.js';

/** Header (8) + IV (8) + the smallest trailer (2 padding, pad length, next header) + ICV (16). */
export const TUNNEL_ESP_MIN = 16 + 4 + 16;

export interface TunnelEspKey {
  /** AES-GCM key, 16 or 32 bytes. */
  key: Uint8Array;
  /** 4-byte salt (RFC 4106 §8.1). */
  salt: Uint8Array;
}

export interface TunnelEspSealKey extends TunnelEspKey {
  spi: number;
}

function tunnelPad(innerLength: number): number {
  return (4 - ((innerLength + 2) % 4)) % 4;
}

/** ESP length (header, ciphertext, ICV) of an inner packet of `innerLength` bytes. */
export function tunnelEspLength(innerLength: number): number {
  return 16 + innerLength + tunnelPad(innerLength) + 2 + 16;
}

function gcm(key: Uint8Array): 'aes-128-gcm' | 'aes-256-gcm' {
  return key.length === 16 ? 'aes-128-gcm' : 'aes-256-gcm';
}

/** The SPI and sequence number of an ESP packet of at least 8 bytes. */
export function tunnelEspHeader(esp: Uint8Array): { spi: number; seq: number } {
  return { spi: rd32(esp, 0), seq: rd32(esp, 4) };
}

/**
 * Seals `inner` (a whole IP packet: next header 4 or 41) into `out`, which must hold exactly
 * tunnelEspLength(inner.length) bytes (the caller places it behind its outer headers).
 */
export function tunnelEspSealInto(
  sa: TunnelEspSealKey,
  seq: number,
  nextHeader: number,
  inner: Uint8Array,
  out: Uint8Array,
): void {
  const pad = tunnelPad(inner.length);
  wr32(out, 0, sa.spi);
  wr32(out, 4, seq);
  wr32(out, 8, 0);
  wr32(out, 12, seq); // IV: the sequence number as a 64-bit counter (high half 0)
  const trailer = new Uint8Array(pad + 2);
  for (let i = 0; i < pad; i++) trailer[i] = i + 1;
  trailer[pad] = pad;
  trailer[pad + 1] = nextHeader;
  const c = createCipheriv(gcm(sa.key), sa.key, Buffer.concat([sa.salt, out.subarray(8, 16)]), { authTagLength: 16 });
  c.setAAD(out.subarray(0, 8));
  let pos = 16;
  for (const part of [c.update(inner), c.update(trailer), c.final(), c.getAuthTag()]) {
    out.set(part, pos);
    pos += part.length;
  }
}

/** Verifies and decrypts; undefined when the ICV or the padding is wrong. */
export function tunnelEspOpen(
  sa: TunnelEspKey,
  esp: Uint8Array,
): { nextHeader: number; payload: Uint8Array } | undefined {
  if (esp.length < TUNNEL_ESP_MIN) return undefined;
  const ctEnd = esp.length - 16;
  let pt: Buffer;
  try {
    const d = createDecipheriv(gcm(sa.key), sa.key, Buffer.concat([sa.salt, esp.subarray(8, 16)]), {
      authTagLength: 16,
    });
    d.setAAD(esp.subarray(0, 8));
    d.setAuthTag(esp.subarray(ctEnd));
    pt = Buffer.concat([d.update(esp.subarray(16, ctEnd)), d.final()]);
  } catch {
    return undefined;
  }
  const pad = pt[pt.length - 2];
  if (pad + 2 > pt.length) return undefined;
  const start = pt.length - 2 - pad;
  for (let i = 0; i < pad; i++) if (pt[start + i] !== i + 1) return undefined;
  return { nextHeader: pt[pt.length - 1], payload: new Uint8Array(pt.buffer, pt.byteOffset, start) };
}
