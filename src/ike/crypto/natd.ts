// NAT detection (RFC 7296 §2.23): NAT_DETECTION_SOURCE_IP / _DESTINATION_IP notify data is
// SHA-1(SPIi | SPIr | IP address | port). In the IKE_SA_INIT request SPIr is still zero.
// SHA-1 is what the RFC fixes here; it only has to detect address rewriting, not resist forgery.

import { createHash } from 'node:crypto';
import { ipToBytes, parseIp } from '../../base/addr.js';

export const NOTIFY_NAT_DETECTION_SOURCE_IP = 16388;
export const NOTIFY_NAT_DETECTION_DESTINATION_IP = 16389;
export const NAT_DETECTION_HASH_LENGTH = 20;

/** The 4 or 16 bytes of an IPv4/IPv6 address given as text or bytes. */
function addressBytes(ip: string | Uint8Array): Uint8Array {
  if (typeof ip !== 'string') {
    if (ip.length !== 4 && ip.length !== 16) throw new RangeError('an IP address is 4 or 16 bytes');
    return ip;
  }
  const p = parseIp(ip);
  if (!p.ok) throw new RangeError(p.error.message);
  return ipToBytes(p.value);
}

export function natDetectionHash(spiI: Uint8Array, spiR: Uint8Array, ip: string | Uint8Array, port: number): Buffer {
  if (spiI.length !== 8 || spiR.length !== 8) throw new RangeError('IKE SPIs are 8 bytes');
  if (!Number.isInteger(port) || port < 0 || port > 0xffff) throw new RangeError('port must be 0..65535');
  const p = Buffer.alloc(2);
  p.writeUInt16BE(port);
  return createHash('sha1').update(spiI).update(spiR).update(addressBytes(ip)).update(p).digest();
}

/** Whether received notify data matches the hash of the address and port we observe. */
export function natDetectionMatches(
  data: Uint8Array,
  spiI: Uint8Array,
  spiR: Uint8Array,
  ip: string | Uint8Array,
  port: number,
): boolean {
  return data.length === NAT_DETECTION_HASH_LENGTH && natDetectionHash(spiI, spiR, ip, port).equals(data);
}
