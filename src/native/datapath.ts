// The TUN datapath: native reader threads own one or two TUN devices (IFF_VNET_HDR with TSO/CSUM
// offloads, optionally multiqueue), run every packet through a NativeExecutor's state and write
// forwarded packets back; JavaScript receives only punted packets, in batches, through a
// preallocated buffer. See docs/dataplane.md for the routing set-up (two devices: one per side).
import { ipFamily, ipFromBytes, ipToBytes, type Ip } from '../base/addr.js';
import { TUNNEL_PORT, type PuntReason, type Side } from '../core/executor.js';
import { err, ok, type Result } from '../base/result.js';
import type { DatapathHandle } from './binding.js';
import { PUNT_REASONS, DROP_REASONS, type NativeExecutor } from './native-executor.js';

export const DATAPATH_STAT_NAMES: readonly string[] = [
  'rx.frames',
  'rx.bytes',
  'rx.gso',
  'rx.segments',
  'rx.bad',
  'rx.errors',
  'tx.packets',
  'tx.bytes',
  'tx.errors',
  'punt.delivered',
  'punt.batches',
  'punt.dropped',
  'injected',
  'tx.raw',
  'udp.rx',
  'udp.rx-bytes',
  'udp.rx-truncated',
  'udp.tx',
  'udp.tx-bytes',
  'udp.tx-errors',
  'tx.local',
  'tx.gso',
  'rx.gso-esp',
  'udp.rx-gro',
  'tx.holds',
  'rx.held',
];

/** Punt side code of datagrams from the tunnel port (native/src/datapath.h DP_SIDE_UDP), and their prefix. */
const SIDE_UDP = 2;
const UDP_PREFIX = 24;

/**
 * Punted packets handed over in one callback. The views are valid only during the callback: the
 * memory is reused for a later batch as soon as it returns (copy what you keep, e.g. with slice()).
 */
export interface PuntBatch {
  readonly count: number;
  side(i: number): Side;
  reason(i: number): PuntReason;
  /** A view of packet i (no copy). */
  packet(i: number): Uint8Array;
}

/**
 * Datagrams from the tunnel port handed over in one callback: IKE (reason 'ike', the payload still
 * behind its non-ESP marker, as RFC 3948 frames it) and ESP for an SPI the executor does not hold
 * ('unknown-spi'). Views are valid only during the callback.
 */
export interface UdpBatch {
  readonly count: number;
  reason(i: number): PuntReason;
  /** Sender's address and port (after any NAT: where replies go). */
  srcAddr(i: number): Ip;
  srcPort(i: number): number;
  /** The UDP payload as received (a view, no copy). */
  payload(i: number): Uint8Array;
}

export interface DatapathOptions {
  /** TUN device fed by policy routing with what arrives from the inside interfaces. */
  inside?: string;
  /** TUN device fed with what arrives from the outside (WAN) interfaces. */
  outside?: string;
  /**
   * Queues per device, 1..8; more than 1 opens the devices multiqueue. Each reader thread reads one
   * queue of each device (both directions), so a packet that a write causes at once (a terminal's
   * reply, a TCP ACK) is read without waking another thread.
   */
  queues?: number;
  onPunt: (batch: PuntBatch) => void;
  /**
   * Called once if a reader thread stops on its own: a TUN device was deleted or failed, so the
   * directions that thread served are no longer forwarded (nothing leaks: the packets stay queued
   * or are dropped by the kernel). The gateway exits on it, to be restarted. `failure` keeps it.
   */
  onFailure?: (message: string) => void;
  /** Punt buffers in the pool (default 8) and the size of each (default 256 KiB, 512 packets). */
  batches?: number;
  batchBytes?: number;
  batchPackets?: number;
  /** Whether the open datapath keeps the process alive (default true). */
  keepAlive?: boolean;
  /** Coalesce forwarded TCP segments into GSO super-packets before writing them (default true). */
  gro?: boolean;
  /**
   * Send encrypted packets through a raw IPv4 socket in batches (sendmmsg) instead of writing them
   * to the TUN one by one (default true; falls back to the TUN without CAP_NET_RAW). The packet
   * leaves as if forwarded: its TTL is decremented once.
   */
  rawEgress?: boolean;
  /**
   * Write runs of group ESP in UDP (the segments of one TCP super-packet) as one UDP GSO
   * super-packet to the TUN (VIRTIO_NET_HDR_GSO_UDP_L4, kernel >= 6.2; default true). Without the
   * kernel's USO on the TUN devices this is off by itself.
   */
  uso?: boolean;
  /**
   * Hold runs of small packets open for 25 µs after a queue ran dry (default true): a stream of
   * small packets read one per frame (not TCP: its ACKs clock the sender) then crosses the
   * kernel's forwarding path in long super-packets rather than one short one per burst. The queue
   * is not polled during a hold: what arrives meanwhile is read at its end, all at once, and while
   * the stream goes on, holds follow each other (interrupt moderation). A lone packet (a burst of
   * one frame) never starts a hold. Counted in `tx.holds` and `rx.held` (frames read at the end of
   * a hold).
   */
  hold?: boolean;
  /**
   * The tunnel port (ESP in UDP, RFC 3948, shared with IKE): a UDP socket bound to the gateway's
   * outside address, port 4500 by default; a dual-stack gateway gives an IPv4 and an IPv6 address
   * (two sockets on the same port, tunnel ESP and IKE leave from the one of the peer's family).
   * A native thread reads them in batches (recvmmsg),
   * decrypts ESP with the executor's tunnel SAs into the inside TUN, and hands IKE to `onUdp`;
   * tunnel ESP leaves through it (sendmmsg); `sendUdp()` sends IKE through it.
   */
  udp?: { address: Ip | Ip[]; port?: number };
  onUdp?: (batch: UdpBatch) => void;
}

/** A batch the native thread filled: per entry, offset, length and (side << 8 | reason) in `meta`. */
abstract class NativeBatchView {
  count = 0;
  protected buf: Uint8Array = new Uint8Array(0);
  protected meta: Uint32Array = new Uint32Array(0);

  reset(buf: Uint8Array, meta: Uint32Array, count: number): void {
    this.buf = buf;
    this.meta = meta;
    this.count = count;
  }

  reason(i: number): PuntReason {
    return PUNT_REASONS[(this.meta[3 * i + 2] & 0xff) - DROP_REASONS.length];
  }
}

class BatchView extends NativeBatchView implements PuntBatch {
  side(i: number): Side {
    return this.meta[3 * i + 2] >> 8 === 0 ? 'inside' : 'outside';
  }

  packet(i: number): Uint8Array {
    const off = this.meta[3 * i];
    return this.buf.subarray(off, off + this.meta[3 * i + 1]);
  }
}

class UdpBatchView extends NativeBatchView implements UdpBatch {
  srcAddr(i: number): Ip {
    const o = this.meta[3 * i];
    return ipFromBytes(this.buf, o, this.buf[o + 16] === 6 ? 6 : 4);
  }

  srcPort(i: number): number {
    const o = this.meta[3 * i];
    return (this.buf[o + 18] << 8) | this.buf[o + 19];
  }

  payload(i: number): Uint8Array {
    const off = this.meta[3 * i];
    return this.buf.subarray(off + UDP_PREFIX, off + this.meta[3 * i + 1]);
  }
}

export class NativeDatapath {
  private closed = false;

  private constructor(
    private readonly exec: NativeExecutor,
    private readonly handle: DatapathHandle,
    private readonly failed: () => string | undefined,
  ) {}

  /** Why a reader thread stopped on its own (see `onFailure`), or undefined while none has. */
  get failure(): string | undefined {
    return this.failed();
  }

  /**
   * Opens the TUN devices (creating them if needed; the caller brings them up and routes into
   * them) and starts the reader threads. Needs CAP_NET_ADMIN.
   */
  static open(exec: NativeExecutor, opts: DatapathOptions): Result<NativeDatapath> {
    const queues = opts.queues ?? 1;
    const devices: [string, 0 | 1, number][] = [];
    if (opts.inside) devices.push([opts.inside, 0, queues]);
    if (opts.outside) devices.push([opts.outside, 1, queues]);
    if (devices.length === 0) return err('bad-config', 'a datapath needs an inside or an outside TUN device');
    if (opts.inside && opts.inside === opts.outside)
      return err('bad-config', 'inside and outside must be different TUN devices');
    const n = opts.batches ?? 8;
    const bytes = opts.batchBytes ?? 256 * 1024;
    const packets = opts.batchPackets ?? 512;
    const bufs = Array.from({ length: n }, () => new Uint8Array(bytes));
    const metas = Array.from({ length: n }, () => new Uint32Array(3 * packets));
    const view = new BatchView();
    const udpView = new UdpBatchView();
    const onPunt = opts.onPunt;
    const onUdp = opts.onUdp;
    const onFailure = opts.onFailure;
    let failure: string | undefined;
    const deliver = (buf: Uint8Array | string, meta: Uint32Array | null, count: number): void => {
      // The addon reports a stopped reader thread as (message, null, -1).
      if (typeof buf === 'string' || meta === null) {
        failure = typeof buf === 'string' && buf !== '' ? buf : 'a datapath reader thread stopped';
        const f = failure;
        if (onFailure) queueMicrotask(() => onFailure(f));
        return;
      }
      try {
        // A batch holds the punts of one thread: all packets, or all tunnel-port datagrams.
        if (count > 0 && meta[2] >> 8 === SIDE_UDP) {
          udpView.reset(buf, meta, count);
          onUdp?.(udpView);
        } else {
          view.reset(buf, meta, count);
          onPunt(view);
        }
      } catch (e) {
        // A throwing handler must not take the datapath down; surface it as Node would.
        queueMicrotask(() => {
          throw e;
        });
      }
    };
    let udp: [Uint8Array, number, Uint8Array | undefined] | undefined;
    if (opts.udp) {
      const addrs = Array.isArray(opts.udp.address) ? opts.udp.address : [opts.udp.address];
      if (addrs.length < 1 || addrs.length > 2 || (addrs.length === 2 && ipFamily(addrs[0]) === ipFamily(addrs[1]))) {
        return err(
          'bad-config',
          `the tunnel port takes one address, or one IPv4 and one IPv6 address: ${addrs.join(', ')}`,
        );
      }
      udp = [
        ipToBytes(addrs[0]),
        opts.udp.port ?? TUNNEL_PORT,
        addrs[1] === undefined ? undefined : ipToBytes(addrs[1]),
      ];
    }
    try {
      const options =
        (opts.gro === false ? 0 : 1) |
        (opts.rawEgress === false ? 0 : 2) |
        (opts.uso === false ? 0 : 4) |
        (opts.hold === false ? 0 : 8);
      const handle = exec.binding.datapathOpen(exec.handle, devices, bufs, metas, deliver, options, udp);
      const dp = new NativeDatapath(exec, handle, () => failure);
      if (opts.keepAlive === false) dp.unref();
      return ok(dp);
    } catch (e) {
      return err('tun-open', e instanceof Error ? e.message : String(e));
    }
  }

  /** Injects one packet (a complete IPv4 or IPv6 packet) into the TUN device of `side`. */
  write(side: Side, packet: Uint8Array): Result<void> {
    if (this.closed) return err('closed', 'datapath is closed');
    const r = this.exec.binding.datapathWrite(this.handle, side === 'inside' ? 0 : 1, packet);
    return r === 0 ? ok(undefined) : err('tun-write', `TUN write failed (errno ${-r})`);
  }

  /**
   * Sends a packet of the gateway's own (its source is one of this host's addresses: an ICMP error
   * or an ICMPv6 Packet Too Big to a terminal; IPv4 or IPv6, through a raw socket of that family)
   * as locally originated, routed by its destination. Not through a TUN: the kernel
   * drops a packet written there with a local source address as a martian.
   */
  sendLocal(packet: Uint8Array): Result<void> {
    if (this.closed) return err('closed', 'datapath is closed');
    const r = this.exec.binding.datapathSendLocal(this.handle, packet);
    return r === 0 ? ok(undefined) : err('local-send', `sending the gateway's own packet failed (errno ${-r})`);
  }

  /**
   * Sends one datagram from the tunnel port to dst:port, exactly these bytes (IKE: the caller adds
   * the non-ESP marker, e.g. addNonEspMarker in src/ike/message/framing.ts). The kernel sets DF
   * as for any UDP socket (when the datagram fits the path MTU).
   */
  sendUdp(dst: Ip, port: number, payload: Uint8Array): Result<void> {
    if (this.closed) return err('closed', 'datapath is closed');
    const r = this.exec.binding.datapathSendUdp(this.handle, ipToBytes(dst), port, payload, 0);
    return r === 0 ? ok(undefined) : err('udp-send', `tunnel port send failed (errno ${-r})`);
  }

  /**
   * Sends a packet the executor made in tunnel mode (a 'tunnel-encrypt' verdict's bytes: outer
   * IPv4 or IPv6 + UDP + ESP), e.g. one the core flushed from its buffer: the UDP payload goes out
   * of the tunnel port of that family to the outer destination, with the outer DF bit (IPv6: never
   * fragmented).
   */
  sendTunnelPacket(outer: Uint8Array): Result<void> {
    if (this.closed) return err('closed', 'datapath is closed');
    const v6 = outer.length >= 48 && outer[0] >> 4 === 6 && outer[6] === 17;
    if (!v6 && (outer.length < 28 || outer[0] !== 0x45 || outer[9] !== 17))
      return err('bad-packet', 'not an outer IPv4/UDP or IPv6/UDP packet from the executor');
    const dst = v6 ? outer.slice(24, 40) : outer.slice(16, 20);
    const at = v6 ? 40 : 20;
    const port = (outer[at + 2] << 8) | outer[at + 3];
    const r = this.exec.binding.datapathSendUdp(
      this.handle,
      dst,
      port,
      outer.subarray(at + 8),
      v6 || outer[6] & 0x40 ? 1 : 2,
    );
    return r === 0 ? ok(undefined) : err('udp-send', `tunnel port send failed (errno ${-r})`);
  }

  stats(): Record<string, number> {
    const s = this.exec.binding.datapathStats(this.handle);
    const out: Record<string, number> = {};
    DATAPATH_STAT_NAMES.forEach((name, i) => (out[name] = s[i]));
    return out;
  }

  /** Stops the reader threads (they hand over their last punts first), closes the devices. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.exec.binding.datapathClose(this.handle);
  }

  ref(): void {
    if (!this.closed) this.exec.binding.datapathRef(this.handle, true);
  }

  unref(): void {
    if (!this.closed) this.exec.binding.datapathRef(this.handle, false);
  }

  get isClosed(): boolean {
    return this.closed;
  }
}
