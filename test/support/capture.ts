// Packet captures in the end-to-end tests: wait for tcpdump, then read its classic pcap file.
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';

export interface CapturedIpv4 {
  src: string;
  dst: string;
  proto: number;
  totalLength: number;
  payload: Buffer;
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

/** IPv4 packets of a classic pcap file (Ethernet link type). */
export function readPcap(path: string): CapturedIpv4[] {
  const buf = readFileSync(path);
  const le = buf.readUInt32LE(0) === 0xa1b2c3d4;
  const u32 = (o: number) => (le ? buf.readUInt32LE(o) : buf.readUInt32BE(o));
  const out: CapturedIpv4[] = [];
  for (let off = 24; off + 16 <= buf.length; ) {
    const len = u32(off + 8);
    const frame = buf.subarray(off + 16, off + 16 + len);
    off += 16 + len;
    if (frame.length < 34 || frame.readUInt16BE(12) !== 0x0800) continue;
    const ip = frame.subarray(14);
    out.push({ src: [...ip.subarray(12, 16)].join('.'), dst: [...ip.subarray(16, 20)].join('.'), proto: ip[9], totalLength: ip.readUInt16BE(2), payload: ip.subarray((ip[0] & 15) * 4) });
  }
  return out;
}
