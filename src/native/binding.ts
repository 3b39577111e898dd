// Loads the native fast path (native/build/Release/kasane_native.node, built by
// scripts/build-native.mjs during `npm install`). When it is missing or does not load, loadNative()
// says why and the caller falls back to the TypeScript executor (src/core/ts-executor.ts): every
// feature works without it, only slower. Environment: KASANE_NATIVE=0 disables it (to exercise the
// fallback); KASANE_NATIVE_PATH points at another build of the addon.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { err, ok, type Result } from '../base/result.js';

/** Opaque handles owned by the addon (N-API externals). */
export type ExecutorHandle = { readonly __brand: 'kasane-executor' };
export type DatapathHandle = { readonly __brand: 'kasane-datapath' };

/** What installTunnelTx and installTunnelRx take first: a tunnel SA's identity, key and outer addresses. */
export type TunnelSaArgs = [
  h: ExecutorHandle,
  spi: number,
  vpnId: number,
  peer: string,
  key: Uint8Array,
  salt: Uint8Array,
  localAddr: Uint8Array,
  localPort: number,
  remoteAddr: Uint8Array,
  remotePort: number,
];

/** What executorThreads did: wall times of each phase, and what became of every packet. */
export interface ExecutorThreadsResult {
  sealNs: number;
  /** -1: the open phase did not run (a packet failed to seal, or a sequence number was taken twice). */
  openNs: number;
  sealed: number;
  /** Sequence numbers handed out more than once (a nonce reused under the key): must be 0. */
  duplicateSeqs: number;
  opened: number;
  /** Packets the replay window refused in the first opening (must be 0: the threads open in steps within it). */
  replays: number;
  /** Packets with any other verdict, or that a thread could not run. */
  other: number;
  /** Opened packets whose content differed from what was sealed. */
  mismatches: number;
  /** Packets opened in the second round (each a replay): must be 0. */
  reopened: number;
}

/** The raw addon surface; use NativeExecutor and NativeDatapath instead. */
export interface NativeBinding {
  executorNew(): ExecutorHandle;
  /** tunnelSpi: -1 (or absent) for group mode. */
  installPath(
    h: ExecutorHandle,
    family: 4 | 6,
    local: Uint8Array,
    remote: Uint8Array,
    action: number,
    vpnId: number,
    peer: string | undefined,
    mtu: number,
    tunnelSpi?: number,
  ): void;
  removePath(h: ExecutorHandle, family: 4 | 6, local: Uint8Array, remote: Uint8Array): boolean;
  installTxSa(
    h: ExecutorHandle,
    spi: number,
    vpnId: number,
    epoch: number,
    key: Uint8Array,
    salt: Uint8Array,
    nextSeq: bigint,
    rawEsp: boolean,
  ): void;
  removeTxSa(h: ExecutorHandle, vpnId: number): boolean;
  /** floor: sequence numbers below it count as received (0n: none). */
  installRxSa(
    h: ExecutorHandle,
    spi: number,
    vpnId: number,
    epoch: number,
    sender: string,
    key: Uint8Array,
    salt: Uint8Array,
    floor: bigint,
  ): void;
  removeRxSa(h: ExecutorHandle, spi: number): boolean;
  /** A drop/punt code, or [code, bytes, vpnId, spi, seq, sender] for a forward. */
  process(
    h: ExecutorHandle,
    side: 0 | 1,
    packet: Uint8Array,
    now: number,
    recheck: boolean,
  ): number | [number, Uint8Array, number?, number?, bigint?, string?, number?];
  pathStats(h: ExecutorHandle, family: 4 | 6, local: Uint8Array, remote: Uint8Array): Float64Array | undefined;
  allPathStats(h: ExecutorHandle): [Uint8Array, Float64Array];
  counters(h: ExecutorHandle): Float64Array;
  txNextSeq(h: ExecutorHandle, vpnId: number): bigint;
  installTunnelTx(...args: [...TunnelSaArgs, nextSeq: number, softSeqLimit: number]): void;
  removeTunnelTx(h: ExecutorHandle, spi: number): boolean;
  /** ranges: 33-byte selectors (family, start, end; IPv4 in the first 4 of 16 bytes), nLocal local ones first. */
  installTunnelRx(...args: [...TunnelSaArgs, ranges: Uint8Array, nLocal: number, window: number]): void;
  removeTunnelRx(h: ExecutorHandle, spi: number): boolean;
  processUdp(
    h: ExecutorHandle,
    src: Uint8Array,
    srcPort: number,
    payload: Uint8Array,
    now: number,
  ): number | [number, Uint8Array, number?, number?, bigint?, string?];
  /** [vpnId, packets, bytes, lastUsed, nextSeq, softSeqLimit], peer */
  tunnelTxStats(h: ExecutorHandle, spi: number): [Float64Array, string] | undefined;
  /**
   * [vpnId, packets, bytes, lastUsed, highestSeq, replayDrops, authFailures, selectorDrops, lastFamily, lastPort],
   * peer, lastSrc
   */
  tunnelRxStats(h: ExecutorHandle, spi: number): [Float64Array, string, Uint8Array] | undefined;
  datapathOpen(
    h: ExecutorHandle,
    devices: [string, 0 | 1, number][],
    bufs: Uint8Array[],
    metas: Uint32Array[],
    /** A batch of punts; or (message, null, -1) once when a reader thread stopped on a device error. */
    onPunt: (buf: Uint8Array | string, meta: Uint32Array | null, count: number) => void,
    /** 1: GRO of forwarded TCP segments; 2: ESP egress through a raw socket. */
    options: number,
    /** The tunnel port: [address (4 or 16 bytes), port, an address of the other family (dual stack)?]. */
    udp?: [Uint8Array, number, Uint8Array | undefined],
  ): DatapathHandle;
  /** df: 0 the kernel's choice, 1 set, 2 clear. 0 or -errno. */
  datapathSendUdp(d: DatapathHandle, dst: Uint8Array, port: number, payload: Uint8Array, df: 0 | 1 | 2): number;
  datapathWrite(d: DatapathHandle, side: 0 | 1, packet: Uint8Array): number;
  datapathSendLocal(d: DatapathHandle, packet: Uint8Array): number;
  datapathStats(d: DatapathHandle): Float64Array;
  datapathClose(d: DatapathHandle): void;
  datapathRef(d: DatapathHandle, keepAlive: boolean): void;
  vnetFrame(frame: Uint8Array): Uint8Array[] | null;
  groCoalesce(packets: Uint8Array[]): Uint8Array[];
  /** The frames the datapath writes for these group ESP-in-UDP packets, or forwarded UDP datagrams (UDP GSO
   * super-packets for runs). */
  usoCoalesce(packets: Uint8Array[], forwarded: boolean): Uint8Array[];
  /** The in-place split of a UDP GSO super-packet of group ESP (the outside's fast path); null if it is not one. */
  espSplit(frame: Uint8Array): Uint8Array[] | null;
  espBench(payloadBytes: number, count: number): [number, number];
  /**
   * `threads` threads seal `count` UDP packets each from 10.77.0.1 to 10.77.0.2 through the executor at
   * once, then open them all at once (an encrypt rule each way, one peer, the VPN's sending SA and a
   * receiving SA of the same key installed by the caller), then once more (native/src/addon.c).
   */
  executorThreads(ex: ExecutorHandle, threads: number, payloadBytes: number, count: number): ExecutorThreadsResult;
  nowMs(): number;
  /** [upperProto, upperOffset (-1: none), fragment (0 none, 1 first, 2 later), extLength, neverIntercepted, total]. */
  ipv6Walk(packet: Uint8Array): [number, number, number, number, number, number] | undefined;
  /** The kernel's path MTU toward an IPv4 (4 bytes) or IPv6 (16 bytes) address, or -errno. */
  kernelPathMtu(addr: Uint8Array): number;
  readonly counterCount: number;
  readonly datapathStatCount: number;
}

const DEFAULT_PATH = fileURLToPath(new URL('../../native/build/Release/kasane_native.node', import.meta.url));

let cached: Result<NativeBinding> | undefined;

/** The addon, or why it is unavailable (code 'native-unavailable'). Loaded once. */
export function loadNative(): Result<NativeBinding> {
  if (cached) return cached;
  cached = load();
  return cached;
}

function load(): Result<NativeBinding> {
  const flag = process.env.KASANE_NATIVE;
  if (flag === '0' || flag === 'off' || flag === 'false') {
    return err('native-unavailable', 'native fast path disabled by KASANE_NATIVE=' + flag);
  }
  if (process.platform !== 'linux')
    return err('native-unavailable', `native fast path is Linux-only (platform ${process.platform})`);
  const path = process.env.KASANE_NATIVE_PATH || DEFAULT_PATH;
  try {
    const m = createRequire(import.meta.url)(path) as NativeBinding;
    if (typeof m.executorNew !== 'function' || typeof m.counterCount !== 'number') {
      return err('native-unavailable', `${path} is not the kasane addon`);
    }
    return ok(m);
  } catch (e) {
    const why = e instanceof Error ? e.message.split('\n')[0] : String(e);
    return err(
      'native-unavailable',
      `native fast path unavailable (${why}); build it with \`node scripts/build-native.mjs\` ` +
        '(needs python3, make, g++ and the node headers); the TypeScript executor is used instead',
    );
  }
}
