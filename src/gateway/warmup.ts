// Warms the key-search code up in the background after the gateway starts. A search is rare next
// to data packets, so without this its code stays cold in V8 (interpreted, unoptimised) and each
// of the five hops of a search costs 0.3–1 ms of JavaScript instead of ~20 µs: measured here, the
// first packet of a new path took ~3.7 ms to arrive cold and ~2 ms after 60 searches (bench/peers
// search latency). Running a few thousand searches between two private in-memory cores (the same
// core, search, codec and crypto code as the live path, with a throw-away key) lets V8 optimise
// that code before the first real terminal needs it.
//
// The warm-up must look like the live path to V8, or the first real search throws the optimised
// code away again (a deopt cascade measured with --log-deopt: "wrong map" where the executor was
// of another class, "not a Smi" where times were small integers) and every hop runs interpreted
// again (0.2–0.5 ms each): so the cores get the same executor class as the daemon's (private
// instances) and wall-clock times.
import { Prefix } from '../base/addr.js';
import { GatewayCore } from '../core/gateway-core.js';
import type { CoreAction } from '../core/gateway-api.js';
import { buildIcmpEcho, echoReplyFor } from '../core/packet/icmp.js';
import { buildIpv4, ipv4Dst, PROTO_ICMP } from '../core/packet/ipv4.js';
import type { Executor } from '../core/executor.js';
import type { AuthoritySnapshot } from '../core/types.js';
import { cryptoRandom } from '../base/random.js';

export interface WarmupResult {
  searches: number;
  /** Searches that completed and delivered their first packet (all of them, unless the code broke). */
  completed: number;
  ms: number;
}

export interface WarmupOptions {
  searches?: number;
  /** Searches between two yields to the event loop. */
  slice?: number;
  /** Makes each private core's executor: the same class as the live core's (default: the TypeScript one). */
  executor?: () => Executor;
  /** Wall-clock start (ms since the epoch), as the live core sees time. */
  now?: number;
}

/** Runs key searches between two private cores (in slices, yielding to the event loop between them). */
export async function warmUpSearchPath(o: WarmupOptions = {}): Promise<WarmupResult> {
  const searches = o.searches ?? 3000;
  const slice = o.slice ?? 100;
  const start = o.now ?? Date.now();
  const started = performance.now();
  // Documentation ranges only: nothing here is ever sent anywhere.
  const snapshot: AuthoritySnapshot = {
    version: 1,
    protectedPrefixes: [Prefix.from('198.18.0.0/16'), Prefix.from('198.19.0.0/16')],
    vpns: [
      {
        id: 1,
        name: 'warmup',
        mode: 'group',
        epochs: [{ epoch: 1, key: cryptoRandom(32), activeFrom: 0, expiresAt: Number.MAX_SAFE_INTEGER }],
        members: [
          {
            gateway: 'W1',
            address: '192.0.2.1',
            prefixes: [Prefix.from('198.18.0.0/16')],
            spis: [{ epoch: 1, spi: 0x101 }],
          },
          {
            gateway: 'W2b',
            address: '192.0.2.2',
            prefixes: [Prefix.from('198.19.0.0/16')],
            spis: [{ epoch: 1, spi: 0x102 }],
          },
        ],
      },
    ],
  };
  const cores = {
    W1: new GatewayCore({
      config: { id: 'W1', address: '192.0.2.1', attached: [Prefix.from('198.18.0.0/16')] },
      snapshot,
      now: start,
      executor: o.executor?.(),
    }),
    // Names of two lengths: search messages of odd and even length, as live names make them.
    W2: new GatewayCore({
      config: { id: 'W2b', address: '192.0.2.2', attached: [Prefix.from('198.19.0.0/16')] },
      snapshot,
      now: start,
      executor: o.executor?.(),
    }),
  };
  const home = (ip: string): 'W1' | 'W2' => (ip.startsWith('198.18.') ? 'W1' : 'W2');
  const queue: ['W1' | 'W2', 'inside' | 'outside', Uint8Array][] = [];
  const handle = (gw: 'W1' | 'W2', actions: CoreAction[]) => {
    for (const a of actions) {
      if (a.type !== 'emit') continue;
      if (home(ipv4Dst(a.bytes)) !== gw) queue.push([gw === 'W1' ? 'W2' : 'W1', 'outside', a.bytes]);
      else if (a.bytes[20] === 8) {
        // The terminal answers echo requests (the search probes and the data ping), as any host does.
        const r = echoReplyFor(a.bytes);
        if (r.ok) queue.push([gw, 'inside', r.value]);
      }
    }
  };
  let now = start;
  for (let i = 0; i < searches; i++) {
    // Searches from both ends, with odd and even lengths (the checksum's odd tail is a path of its own).
    const from: 'W1' | 'W2' = i & 1 ? 'W2' : 'W1';
    const a = `198.18.${(i >> 8) & 255}.${i & 255}`;
    const b = `198.19.${(i >> 8) & 255}.${i & 255}`;
    const [src, dst] = from === 'W1' ? [a, b] : [b, a];
    const data = new Uint8Array(56 + ((i >> 1) & 1));
    handle(
      from,
      cores[from].onPacket(
        'inside',
        buildIpv4({ src, dst, protocol: PROTO_ICMP, payload: buildIcmpEcho({ type: 8, id: 1, seq: 1, data }) }),
        now,
      ),
    );
    for (let hops = 0; queue.length > 0 && hops < 32; hops++) {
      const [gw, side, bytes] = queue.shift()!;
      handle(gw, cores[gw].onPacket(side, bytes, now));
    }
    queue.length = 0;
    now += 1;
    if (i % slice === slice - 1) {
      // Sweep at every slice (the sweep is warmed too), and age everything out now and then; let
      // the gateway breathe.
      if (i % (slice * 10) === slice * 10 - 1) now += 3_700_000;
      cores.W1.onTick(now);
      cores.W2.onTick(now);
      await new Promise((r) => setImmediate(r));
    }
  }
  const completed = (cores.W1.stats()['search.completed'] ?? 0) + (cores.W2.stats()['search.completed'] ?? 0);
  return { searches, completed, ms: performance.now() - started };
}
