// Notify payload body (RFC 7296 §3.10) and the notify data formats the exchanges need.
import { err, ok, type Result } from '../../base/result.js';
import { PayloadType, ProtocolId } from './constants.js';
import { malformed, type IkeResult } from './errors.js';
import { bytes, copy, EMPTY, u16, u8 } from './wire.js';

export interface NotifyPayload {
  kind: 'N';
  /** 0 (or 1) when about the IKE SA, else the Child SA's protocol (ESP 3, AH 2). */
  protocolId: number;
  /** Empty when about the IKE SA; 4 bytes for an ESP/AH SPI. */
  spi: Buffer;
  notifyType: number;
  data: Buffer;
}

export function decodeNotifyBody(buf: Buffer, start: number, end: number): IkeResult<NotifyPayload> {
  if (end - start < 4) return malformed(PayloadType.N, start, `notify body needs 4 bytes, got ${end - start}`);
  const spiSize = buf[start + 1];
  if (spiSize > end - start - 4) return malformed(PayloadType.N, start + 1, `SPI size ${spiSize} exceeds the payload`);
  return ok({
    kind: 'N',
    protocolId: buf[start],
    spi: copy(buf, start + 4, start + 4 + spiSize),
    notifyType: buf.readUInt16BE(start + 2),
    data: copy(buf, start + 4 + spiSize, end),
  });
}

export function encodeNotifyBody(n: NotifyPayload): Buffer {
  const spi = bytes(n.spi, 'notify SPI');
  const data = bytes(n.data, 'notify data');
  const out = Buffer.alloc(4 + spi.length + data.length);
  out[0] = u8(n.protocolId, 'notify protocol ID');
  out[1] = u8(spi.length, 'notify SPI size');
  out.writeUInt16BE(u16(n.notifyType, 'notify type'), 2);
  out.set(spi, 4);
  out.set(data, 4 + spi.length);
  return out;
}

/**
 * A Notify payload: about the IKE SA (protocol 0, no SPI) by default; with an SPI, ESP unless `protocolId` says
 * otherwise.
 */
export function notify(
  notifyType: number,
  data: Uint8Array = EMPTY,
  opts: { protocolId?: number; spi?: Buffer } = {},
): NotifyPayload {
  return {
    kind: 'N',
    protocolId: opts.protocolId ?? (opts.spi && opts.spi.length ? ProtocolId.ESP : ProtocolId.NONE),
    spi: opts.spi ?? EMPTY,
    notifyType,
    data: Buffer.from(data),
  };
}

/** The first notify of a type in a payload list. */
export function findNotify(payloads: readonly { kind: string }[], notifyType: number): NotifyPayload | undefined {
  for (const p of payloads)
    if (p.kind === 'N' && (p as NotifyPayload).notifyType === notifyType) return p as NotifyPayload;
  return undefined;
}

// ---- notify data ----

/** SIGNATURE_HASH_ALGORITHMS data: a list of 16-bit hash algorithm identifiers (RFC 7427 §4). */
export function encodeHashAlgorithms(ids: readonly number[]): Buffer {
  const out = Buffer.alloc(2 * ids.length);
  ids.forEach((id, i) => out.writeUInt16BE(u16(id, 'hash algorithm'), 2 * i));
  return out;
}

export function decodeHashAlgorithms(data: Uint8Array): Result<number[]> {
  if (data.length % 2 !== 0) return err('ike-malformed', `SIGNATURE_HASH_ALGORITHMS data of odd length ${data.length}`);
  const out: number[] = [];
  for (let i = 0; i < data.length; i += 2) out.push((data[i] << 8) | data[i + 1]);
  return ok(out);
}

/** INVALID_KE_PAYLOAD data: the DH group the responder wants (RFC 7296 §3.10.1). */
export function encodeGroupData(group: number): Buffer {
  const out = Buffer.alloc(2);
  out.writeUInt16BE(u16(group, 'DH group'), 0);
  return out;
}

export function decodeGroupData(data: Uint8Array): Result<number> {
  if (data.length !== 2) return err('ike-malformed', `INVALID_KE_PAYLOAD data must be 2 bytes, got ${data.length}`);
  return ok((data[0] << 8) | data[1]);
}
