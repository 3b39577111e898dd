// UDP port 4500 demultiplexing (RFC 3948 §2, RFC 7296 §2.23): one port carries IKE behind a
// 4-byte zero non-ESP marker, ESP (whose SPI is never 0), and 1-byte 0xFF NAT-keepalives.
import { err, ok, type Result } from '../../base/result.js';
import { asBuffer } from './wire.js';

export const NON_ESP_MARKER_BYTES = 4;
export const NAT_KEEPALIVE = 0xff;

export type Udp4500Datagram =
  | { kind: 'ike'; /** The IKE message after the marker (a view, not a copy). */ message: Buffer }
  | { kind: 'esp'; spi: number; /** The whole ESP packet (a view). */ packet: Buffer }
  | { kind: 'keepalive' }
  | { kind: 'invalid'; reason: string };

/** Prepends the non-ESP marker to an IKE message sent on port 4500. */
export function addNonEspMarker(ike: Uint8Array): Buffer {
  const out = Buffer.alloc(NON_ESP_MARKER_BYTES + ike.length);
  out.set(ike, NON_ESP_MARKER_BYTES);
  return out;
}

/** The IKE message inside a port-4500 datagram, or an error if the marker is missing. */
export function stripNonEspMarker(datagram: Uint8Array): Result<Buffer> {
  const b = asBuffer(datagram);
  if (b.length < NON_ESP_MARKER_BYTES || b.readUInt32BE(0) !== 0) {
    return err('ike-no-marker', 'datagram does not start with the non-ESP marker');
  }
  return ok(b.subarray(NON_ESP_MARKER_BYTES));
}

/** Classifies a UDP/4500 payload. ESP needs at least SPI and sequence number (8 bytes). */
export function classifyUdp4500(datagram: Uint8Array): Udp4500Datagram {
  const b = asBuffer(datagram);
  if (b.length === 1 && b[0] === NAT_KEEPALIVE) return { kind: 'keepalive' };
  if (b.length < NON_ESP_MARKER_BYTES) return { kind: 'invalid', reason: `${b.length}-byte datagram` };
  const spi = b.readUInt32BE(0);
  if (spi === 0) return { kind: 'ike', message: b.subarray(NON_ESP_MARKER_BYTES) };
  if (b.length < 8)
    return { kind: 'invalid', reason: `ESP packet of ${b.length} bytes, needs SPI and sequence number` };
  return { kind: 'esp', spi, packet: b };
}
