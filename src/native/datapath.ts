// The TUN datapath: native reader threads own one or two TUN devices (IFF_VNET_HDR with TSO/CSUM
// offloads, optionally multiqueue), run every packet through a NativeExecutor's state and write
// forwarded packets back; JavaScript receives only punted packets, in batches, through a
// preallocated buffer. See docs/dataplane.md for the routing set-up (two devices: one per side).
import type { PuntReason, Side } from '../core/executor.js';
import { err, ok, type Result } from '../core/result.js';
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
];

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

export interface DatapathOptions {
  /** TUN device fed by policy routing with what arrives from the inside interfaces. */
  inside?: string;
  /** TUN device fed with what arrives from the outside (WAN) interfaces. */
  outside?: string;
  /** Queues (reader threads) per device, 1..8; more than 1 opens the device multiqueue. */
  queues?: number;
  onPunt: (batch: PuntBatch) => void;
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
}

class BatchView implements PuntBatch {
  count = 0;
  private buf: Uint8Array = new Uint8Array(0);
  private meta: Uint32Array = new Uint32Array(0);

  reset(buf: Uint8Array, meta: Uint32Array, count: number): void {
    this.buf = buf;
    this.meta = meta;
    this.count = count;
  }

  side(i: number): Side {
    return this.meta[3 * i + 2] >> 8 === 0 ? 'inside' : 'outside';
  }

  reason(i: number): PuntReason {
    return PUNT_REASONS[(this.meta[3 * i + 2] & 0xff) - DROP_REASONS.length];
  }

  packet(i: number): Uint8Array {
    const off = this.meta[3 * i];
    return this.buf.subarray(off, off + this.meta[3 * i + 1]);
  }
}

export class NativeDatapath {
  private closed = false;

  private constructor(
    private readonly exec: NativeExecutor,
    private readonly handle: DatapathHandle,
  ) {}

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
    if (opts.inside && opts.inside === opts.outside) return err('bad-config', 'inside and outside must be different TUN devices');
    const n = opts.batches ?? 8;
    const bytes = opts.batchBytes ?? 256 * 1024;
    const packets = opts.batchPackets ?? 512;
    const bufs = Array.from({ length: n }, () => new Uint8Array(bytes));
    const metas = Array.from({ length: n }, () => new Uint32Array(3 * packets));
    const view = new BatchView();
    const onPunt = opts.onPunt;
    const deliver = (buf: Uint8Array, meta: Uint32Array, count: number): void => {
      view.reset(buf, meta, count);
      try {
        onPunt(view);
      } catch (e) {
        // A throwing handler must not take the datapath down; surface it as Node would.
        queueMicrotask(() => {
          throw e;
        });
      }
    };
    try {
      const options = (opts.gro === false ? 0 : 1) | (opts.rawEgress === false ? 0 : 2);
      const handle = exec.binding.datapathOpen(exec.handle, devices, bufs, metas, deliver, options);
      const dp = new NativeDatapath(exec, handle);
      if (opts.keepAlive === false) dp.unref();
      return ok(dp);
    } catch (e) {
      return err('tun-open', e instanceof Error ? e.message : String(e));
    }
  }

  /** Injects one packet (a complete IPv4 packet) into the TUN device of `side`. */
  write(side: Side, packet: Uint8Array): Result<void> {
    if (this.closed) return err('closed', 'datapath is closed');
    const r = this.exec.binding.datapathWrite(this.handle, side === 'inside' ? 0 : 1, packet);
    return r === 0 ? ok(undefined) : err('tun-write', `TUN write failed (errno ${-r})`);
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
