// Packets from the network and the LAN: the IPv4/ICMP/TCP parsers, the key-search message codec,
// and the whole inbound path of a gateway core that holds keys and paths (as after a real run).
import { isDeepStrictEqual } from 'node:util';
import { parseIpv4 } from '../../src/core/packet/ipv4.js';
import { parseIpv6 } from '../../src/core/packet/ipv6.js';
import { echoReplyFor, icmpErrorAllowed, parseIcmp } from '../../src/core/packet/icmp.js';
import { clampTcpMss, tcpChecksumOk, tcpMss } from '../../src/core/packet/tcp.js';
import { decodeSearchMessage, encodeSearchMessage, isSearchPayload } from '../../src/core/packet/search-message.js';
import type { SimCore } from '../../src/sim/gateway-node.js';
import { captureExample, EXAMPLES } from '../captures.js';
import { Finding, type FuzzTarget } from '../harness.js';
import { mutateBytes, mutateIpv4 } from '../mutate.js';
import { typedResult } from '../oracle.js';
import type { Rng } from '../rng.js';

function capturedPackets(): Uint8Array[] {
  const out: Uint8Array[] = [];
  const seen = new Set<string>();
  for (const f of EXAMPLES) {
    for (const c of captureExample(f).crossings) {
      const k = Buffer.from(c.bytes).toString('hex');
      if (!seen.has(k)) {
        seen.add(k);
        out.push(c.bytes);
      }
    }
  }
  return out;
}

/** The ICMP data of a captured echo, when it is a key-search message. */
function searchPayloadOf(p: Uint8Array): Uint8Array | undefined {
  const ip = parseIpv4(p);
  if (!ip.ok || ip.value.header.protocol !== 1) return undefined;
  const icmp = parseIcmp(ip.value.payload);
  if (!icmp.ok || !('data' in icmp.value)) return undefined;
  const data = (icmp.value as { data: Uint8Array }).data;
  return isSearchPayload(data) ? data : undefined;
}

function mutateSearch(rng: Rng, input: Uint8Array, seeds: readonly Uint8Array[]): Uint8Array {
  // Half the time: a decodable message with one field changed through the codec itself.
  const d = decodeSearchMessage(input);
  if (d.ok && rng.chance(0.5)) {
    const m = d.value;
    const e = m.entries[rng.int(m.entries.length)];
    try {
      switch (rng.int(4)) {
        case 0:
          if (e)
            e.vpns.push(
              ...Array.from({ length: rng.size(40) }, () => ({
                vpnId: rng.u32(),
                epoch: rng.u32(),
                seq: rng.chance(0.5)
                  ? (BigInt(rng.u32()) << 32n) | BigInt(rng.u32())
                  : rng.pick([0n, 1n, 2n ** 32n, 2n ** 64n - 1n]),
                proof: rng.bytes(16),
              })),
            );
          break;
        case 1:
          m.entries.push(
            ...Array.from({ length: rng.size(40) }, () =>
              structuredClone(e ?? { side: 'src' as const, gateway: 'G', address: '10.0.0.1', vpns: [] }),
            ),
          );
          break;
        case 2:
          if (e) e.gateway = rng.pick(['G', 'x'.repeat(63), '東京', 'a b', 'é'.repeat(31)]);
          break;
        default:
          if (e) e.address = rng.pick(['0.0.0.0', '255.255.255.255', '::', '2001:db8::1', '10.9.9.9']);
      }
      return encodeSearchMessage(m);
    } catch {
      // the codec refused to encode it: fall back to bytes
    }
  }
  return mutateBytes(rng, input, seeds);
}

export const packets: FuzzTarget = {
  name: 'ipv4-icmp',
  description:
    'IPv4, ICMP and TCP parsers (parseIpv4, parseIcmp, echoReplyFor, icmpErrorAllowed, tcpMss, clampTcpMss) on captured packets',
  async setup() {
    const seeds = capturedPackets();
    return {
      seeds,
      next: (rng) => (rng.chance(0.05) ? rng.bytes(rng.size(1600)) : mutateIpv4(rng, rng.pick(seeds), seeds)),
      run(input) {
        const ip = parseIpv4(input);
        typedResult(ip, 'parseIpv4');
        if (ip.ok && ip.value.header.protocol === 1) typedResult(parseIcmp(ip.value.payload), 'parseIcmp');
        typedResult(echoReplyFor(input), 'echoReplyFor');
        icmpErrorAllowed(input);
        tcpMss(input);
        tcpChecksumOk(input);
        clampTcpMss(new Uint8Array(input), 1200);
      },
    };
  },
};

export const searchMessage: FuzzTarget = {
  name: 'search-message',
  description:
    'the key-search message codec (decodeSearchMessage; a decoded message must encode back to the same bytes)',
  async setup() {
    const seeds = capturedPackets()
      .map(searchPayloadOf)
      .filter((x): x is Uint8Array => x !== undefined);
    return {
      seeds,
      next: (rng) => (rng.chance(0.05) ? rng.bytes(rng.size(600)) : mutateSearch(rng, rng.pick(seeds), seeds)),
      run(input) {
        const d = decodeSearchMessage(input);
        typedResult(d, 'decodeSearchMessage');
        if (!d.ok) return;
        let again: Uint8Array;
        try {
          again = encodeSearchMessage(d.value);
        } catch (e) {
          throw new Finding('mismatch', `a decoded message does not encode: ${(e as Error).message}`);
        }
        const back = decodeSearchMessage(again);
        if (!back.ok || !isDeepStrictEqual(back.value, d.value)) {
          throw new Finding('mismatch', 'decode(encode(decode(x))) differs from decode(x)');
        }
      },
    };
  },
};

export const gatewayCore: FuzzTarget = {
  name: 'gateway-core',
  description:
    "a gateway core's whole packet path (inside and outside: search, group ESP, MSS clamping, ICMP errors) with the keys and paths of a real run",
  async setup() {
    const run = captureExample(EXAMPLES[0]);
    const cores = [...run.sim.gateways.values()].map((g) => ({ name: g.name, core: g.core as SimCore }));
    const seeds = run.crossings.map((c) => c.bytes);
    let now = 100_000;
    let inputs = 0;
    return {
      seeds,
      next: (rng) => {
        const p = rng.chance(0.05)
          ? rng.bytes(rng.size(1600))
          : mutateIpv4(rng, rng.pick(seeds), seeds, (r, payload) => {
              const s = searchPayloadOf(rng.pick(seeds));
              return s && r.chance(0.5) && payload.length >= 8
                ? new Uint8Array([...payload.subarray(0, 8), ...mutateSearch(r, s, [])])
                : mutateBytes(r, payload, []);
            });
        // First byte: which core and which side (the rest is the packet).
        return new Uint8Array([rng.u32() & 0xff, ...p]);
      },
      run(input) {
        if (input.length === 0) return;
        const { core } = cores[input[0] % cores.length];
        const side = input[0] & 0x80 ? 'inside' : 'outside';
        now += 1;
        // Time moves on, so that searches time out and tables age as they would.
        if (++inputs % 1000 === 0) {
          now += 5_000;
          for (const c of cores) c.core.onTick(now);
        }
        const actions = core.onPacket(side, input.subarray(1), now);
        for (const a of actions) {
          if (a.type === 'drop' && (typeof a.reason !== 'string' || a.reason === ''))
            throw new Finding('untyped-error', `a drop without a reason: ${JSON.stringify(a.reason)}`);
          // Since issue 14 the core also passes and protects IPv6: what it emits is valid IPv4 or IPv6.
          if (a.type === 'emit' && !parseIpv4(a.bytes).ok && !parseIpv6(a.bytes).ok) {
            throw new Finding('untyped-error', 'the core emitted a packet that is neither valid IPv4 nor IPv6');
          }
        }
      },
    };
  },
};
