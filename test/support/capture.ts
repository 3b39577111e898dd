// Packet captures in the end-to-end tests: wait for tcpdump, then read its classic pcap file, the
// IPv4 and the IPv6 packets of it.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { ipFromBytes } from '../../src/base/addr.js';
import type { Testbed } from '../../src/testbed/netns.js';

export interface CapturedIpv4 {
  src: string;
  dst: string;
  proto: number;
  totalLength: number;
  payload: Buffer;
  /** Capture time, ms since the epoch (the namespaces share the host's clock, as Date.now() does). */
  time: number;
}

/**
 * Group ESP on the wire (docs/executor.md), over IPv4 or IPv6: in UDP to port 4500 (the default
 * encapsulation; tunnel mode too; not IKE's non-ESP marker) or raw, IP protocol 50.
 */
export function isEsp(p: CapturedIpv4 | CapturedIpv6): boolean {
  return (
    p.proto === 50 ||
    (p.proto === 17 && p.payload.length >= 16 && p.payload.readUInt16BE(2) === 4500 && p.payload.readUInt32BE(8) !== 0)
  );
}

/** The ESP header of a packet isEsp accepts (after the UDP header when there is one). */
export function espOf(p: CapturedIpv4): Buffer {
  return p.proto === 17 ? p.payload.subarray(8) : p.payload;
}

/** tcpdump's filter for the same: raw ESP, or ESP in UDP to port 4500 (not IKE's non-ESP marker). */
export const ESP_FILTER = '(ip proto 50 or (udp dst port 4500 and udp[8:4] != 0))';

/**
 * Starts tcpdump in a namespace, writing `file`, and resolves once it captures. Immediate mode:
 * without it the kernel hands packets over in blocks, and a capture stopped soon after the
 * traffic can miss the last block.
 */
export async function startCapture(
  tb: Testbed,
  ns: string,
  iface: string,
  file: string,
  filter: string[] = [],
  extra: string[] = [],
): Promise<ChildProcess> {
  const p = tb.spawn(ns, 'tcpdump', ['-i', iface, '-U', '--immediate-mode', '-n', ...extra, '-w', file, ...filter]);
  await listening(p);
  return p;
}

/** Resolves once tcpdump says it is capturing, plus a settle time (its socket needs a moment more). */
export async function listening(p: ChildProcess, settleMs = 1000): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    let err = '';
    const t = setTimeout(() => reject(new Error(`tcpdump did not start: ${err}`)), 30_000);
    p.stderr!.on('data', (b: Buffer) => {
      err += b.toString();
      if (err.includes('listening on')) {
        clearTimeout(t);
        resolve();
      }
    });
  });
  await new Promise((r) => setTimeout(r, settleMs));
}

/** Stops a capture (SIGINT makes tcpdump flush) and waits for it to exit. */
export async function stopCapture(p: ChildProcess): Promise<void> {
  p.kill('SIGINT');
  await new Promise((r) => (p.exitCode !== null ? r(null) : p.once('exit', r)));
}

/**
 * The frames of a classic pcap file (Ethernet link type) with their capture times (ms since the
 * epoch); a capture still being written is read up to its last whole record.
 */
function* pcapRecords(buf: Buffer): Generator<{ frame: Buffer; time: number }> {
  if (buf.length < 24) return;
  const le = buf.readUInt32LE(0) === 0xa1b2c3d4;
  const u32 = (o: number) => (le ? buf.readUInt32LE(o) : buf.readUInt32BE(o));
  for (let off = 24; off + 16 <= buf.length && off + 16 + u32(off + 8) <= buf.length;) {
    const len = u32(off + 8);
    yield { frame: buf.subarray(off + 16, off + 16 + len), time: u32(off) * 1000 + u32(off + 4) / 1000 };
    off += 16 + len;
  }
}

/** A capture file's bytes; none when tcpdump has not made it (yet). */
function readOrEmpty(path: string): Buffer {
  try {
    return readFileSync(path);
  } catch {
    return Buffer.alloc(0);
  }
}

/** IPv4 packets of a classic pcap file (Ethernet link type). */
export function readPcap(path: string): CapturedIpv4[] {
  const out: CapturedIpv4[] = [];
  for (const { frame, time } of pcapRecords(readFileSync(path))) {
    if (frame.length < 34 || frame.readUInt16BE(12) !== 0x0800) continue;
    const ip = frame.subarray(14);
    out.push({
      src: [...ip.subarray(12, 16)].join('.'),
      dst: [...ip.subarray(16, 20)].join('.'),
      proto: ip[9],
      totalLength: ip.readUInt16BE(2),
      payload: ip.subarray((ip[0] & 15) * 4),
      time,
    });
  }
  return out;
}

/** The IPv4 packets of a classic pcap file (Ethernet link type) as raw bytes, link padding cut off. */
export function readPcapFrames(path: string): Buffer[] {
  const out: Buffer[] = [];
  for (const { frame } of pcapRecords(readOrEmpty(path))) {
    if (frame.length < 34 || frame.readUInt16BE(12) !== 0x0800) continue;
    const ip = frame.subarray(14);
    out.push(Buffer.from(ip.subarray(0, Math.min(ip.length, ip.readUInt16BE(2)))));
  }
  return out;
}

export interface CapturedIpv6 {
  src: string;
  dst: string;
  /** The fixed header's next header (ESP in UDP: 17; raw ESP: 50; ICMPv6: 58; an extension header: its number). */
  proto: number;
  payloadLength: number;
  /** Everything after the fixed header. */
  payload: Buffer;
  time: number;
}

/** IPv6 packets of a classic pcap file (Ethernet link type), addresses canonical. */
export function readPcap6(path: string): CapturedIpv6[] {
  const out: CapturedIpv6[] = [];
  for (const { frame, time } of pcapRecords(readOrEmpty(path))) {
    if (frame.length < 54 || frame.readUInt16BE(12) !== 0x86dd) continue;
    const ip = frame.subarray(14);
    out.push({
      src: ipFromBytes(ip, 8, 6),
      dst: ipFromBytes(ip, 24, 6),
      proto: ip[6],
      payloadLength: ip.readUInt16BE(4),
      payload: ip.subarray(40),
      time,
    });
  }
  return out;
}

/** A key-search message over ICMPv6 (echo request 128 or reply 129 whose data carries "KSRC"). */
export function isSearch6(p: CapturedIpv6): boolean {
  return p.proto === 58 && (p.payload[0] === 128 || p.payload[0] === 129) && p.payload.includes(Buffer.from('KSRC'));
}

/** ICMPv6 neighbour discovery (133-137): the link's own business, never intercepted. */
export function isNd(p: CapturedIpv6): boolean {
  return p.proto === 58 && p.payload[0] >= 133 && p.payload[0] <= 137;
}

/**
 * IKE between two gateways, from their captured UDP datagrams of either family: IKE_SA_INIT on UDP
 * 500 and IKE on 4500 behind the non-ESP marker (`over`: the family, for the messages). Returns the
 * ESP in UDP 4500 among them.
 */
export function ikeThenEsp<P extends CapturedIpv4 | CapturedIpv6>(udp: P[], over = ''): P[] {
  const port = (p: P, off: number) => p.payload.readUInt16BE(off);
  assert.ok(
    udp.some((p) => port(p, 0) === 500 && port(p, 2) === 500),
    `IKE_SA_INIT on UDP 500${over}`,
  );
  const nat = udp.filter((p) => port(p, 0) === 4500 && port(p, 2) === 4500);
  assert.ok(
    nat.some((p) => p.payload.readUInt32BE(8) === 0),
    `IKE on UDP 4500${over} (non-ESP marker)`,
  );
  return nat.filter((p) => p.payload.readUInt32BE(8) !== 0);
}
