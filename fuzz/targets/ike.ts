// IKE from the network: whole messages into an engine that has an established IKE SA with a peer
// (mutations of a recorded handshake, rekeys and liveness checks), and decrypted payload chains:
// well-formed or not, sealed with real keys so that they get past decryption, into IKE_AUTH of a
// half-open SA and into INFORMATIONAL and CREATE_CHILD_SA of an established one. The engine must
// never throw, never report an internal error, and never install a Child SA for any of it.
import {
  decodeMessage,
  decodePayloadChain,
  encodePayloadChain,
  ExchangeType,
  PayloadType,
  type Payload,
} from '../../src/ike/message/index.js';
import type { IkeEngine } from '../../src/ike/engine/engine.js';
import type { IkeSa } from '../../src/ike/engine/ike-sa.js';
import type { IkeOutput } from '../../src/ike/engine/types.js';
import { HOUR, IP_A, IP_B, T0, World, type Datagram } from '../../test/ike/engine/net.js';
import { handshake, sealChain, type Attacker } from '../../test/ike/engine/attacker.js';
import { Finding, type FuzzTarget } from '../harness.js';
import { mutateBytes, mutateDer } from '../mutate.js';
import { typedResult } from '../oracle.js';
import type { Rng } from '../rng.js';

/** An engine's answer to hostile input: no internal error, nothing installed. */
function checkOutput(o: IkeOutput): void {
  for (const e of o.events)
    if (e.reason?.startsWith('internal error'))
      throw new Finding('untyped-error', `the engine reported ${e.event}: ${e.reason}`);
  if (o.install.length > 0)
    throw new Finding(
      'violation',
      `a Child SA was installed from fuzzed input: ${JSON.stringify(o.install.map((i) => i.inbound.spi))}`,
    );
}

async function recordedWorld(): Promise<{ w: World; wire: Datagram[] }> {
  const w = await World.make({
    timers: {
      childLifetime: 600_000,
      ikeLifetime: 10 * HOUR,
      dpdDelay: 60_000,
      maxHalfOpen: 100_000,
      cookieThreshold: 100_000,
      maxHalfOpenPerAddress: 100_000,
      maxHalfOpenPerPrefix: 100_000,
    },
    permitHours: 48,
  });
  const wire: Datagram[] = [];
  w.filter = (d) => (wire.push(d), true);
  w.connect('a');
  w.advance(T0 + 560_000); // a Child SA rekey, its delete, liveness checks
  w.filter = () => true;
  return { w, wire };
}

/** The established SA an engine holds (the fuzzer plays its peer with its keys). */
function establishedSa(e: IkeEngine): IkeSa | undefined {
  return [...(e as unknown as { sas: Map<string, IkeSa> }).sas.values()].find((s) => s.state === 'established');
}

/** Changes one typed payload of a chain (its fields, its data), or the chain's membership and order. */
function mutatePayloads(rng: Rng, payloads: Payload[]): Payload[] {
  const p = structuredClone(payloads).map((x) => restoreBuffers(x)) as Payload[];
  const i = rng.int(p.length);
  const x = p[i];
  switch (rng.int(7)) {
    case 0:
      if (x) p.splice(i, 0, structuredClone(x) as Payload);
      break;
    case 1:
      p.splice(i, 1);
      break;
    case 2:
      p.push({
        kind: 'unknown',
        type: rng.pick([0x80, 200, 1, 49, 50, 52, 54, 255]),
        critical: rng.chance(0.5),
        data: Buffer.from(rng.bytes(rng.size(64))),
      });
      break;
    case 3:
      if (p.length > 1) p.push(p.splice(i, 1)[0]);
      break;
    case 4:
      if (x && 'data' in x && Buffer.isBuffer(x.data))
        (x as { data: Buffer }).data = Buffer.from(
          x.kind === 'CERT' || x.kind === 'IDi' || x.kind === 'IDr'
            ? mutateDer(rng, x.data, [])
            : mutateBytes(rng, x.data, []),
        );
      break;
    case 5:
      if (x?.kind === 'SA' && x.proposals[0]) {
        const pr = x.proposals[rng.int(x.proposals.length)];
        const t = pr.transforms[rng.int(pr.transforms.length)];
        if (t && rng.chance(0.5)) t.id = rng.pick([0, 1, 12, 19, 20, 31, 65535, rng.int(65536)]);
        else pr.spi = Buffer.from(rng.bytes(rng.pick([0, 4, 8, 3, 255])));
      } else if (x?.kind === 'TSi' || x?.kind === 'TSr') {
        const s = x.selectors[rng.int(x.selectors.length)];
        if (s) Object.assign(s, { startPort: rng.int(65536), endPort: rng.int(65536), ipProtocol: rng.int(256) });
      } else if (x?.kind === 'N') {
        x.notifyType = rng.pick([1, 7, 14, 16390, 16393, 16430, 16431, 43, rng.int(65536)]);
      } else if (x?.kind === 'D') {
        x.protocolId = rng.pick([1, 3, 0, 255]);
      }
      break;
    default:
      if (x && 'idType' in x) x.idType = rng.int(256);
      else if (x && 'method' in x) x.method = rng.pick([1, 2, 14, 0, 255]);
      else if (x && 'encoding' in x) x.encoding = rng.pick([4, 10, 12, 0, 255]);
  }
  return p;
}

/** structuredClone turns Buffers into Uint8Arrays: make them Buffers again. */
function restoreBuffers(v: unknown): unknown {
  if (v instanceof Uint8Array) return Buffer.from(v);
  if (Array.isArray(v)) return v.map(restoreBuffers);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, restoreBuffers(x)]));
  return v;
}

export const ikeMessage: FuzzTarget = {
  name: 'ike-message',
  description:
    'whole IKE datagrams (mutations of a recorded handshake, rekey and liveness checks) into both engines of an established pair, and decodeMessage',
  async setup() {
    const { w, wire } = await recordedWorld();
    const seeds = wire.map((d) => Uint8Array.of(d.to.address === IP_A ? 0 : 1, d.to.port === 4500 ? 1 : 0, ...d.bytes));
    let n = 0;
    return {
      seeds,
      next(rng) {
        const s = rng.pick(seeds);
        return Uint8Array.of(
          s[0],
          s[1],
          ...(rng.chance(0.05)
            ? rng.bytes(rng.size(1500))
            : mutateBytes(
                rng,
                s.subarray(2),
                seeds.map((x) => x.subarray(2)),
              )),
        );
      },
      async run(input) {
        if (input.length < 2) return;
        const bytes = input.subarray(2);
        typedResult(decodeMessage(bytes), 'decodeMessage');
        const toA = input[0] % 2 === 0;
        const port = input[1] % 2 ? 4500 : 500;
        const engine = toA ? w.a : w.b;
        const o = engine.receive({ address: toA ? IP_B : IP_A, port }, bytes, w.now, port);
        checkOutput(o);
        // Every so often time moves on: half-open SAs expire, liveness checks run between the real pair.
        if (++n % 2000 === 0) {
          w.wire = [];
          w.reset();
          w.advance(w.now + 31_000);
          for (const s of ['a', 'b'] as const)
            for (const e of w.log[s].events)
              if (e.reason?.startsWith('internal error'))
                throw new Finding('untyped-error', `internal error in a timer: ${e.reason}`);
          if (!establishedSa(w.a)) {
            w.connect('a'); // the fuzzer's messages may legitimately have ended it (a replayed delete)
            w.reset();
          }
        }
      },
    };
  },
};

export const ikeChain: FuzzTarget = {
  name: 'ike-chain',
  description:
    'decrypted payload chains, sealed with real keys: IKE_AUTH of half-open SAs, INFORMATIONAL and CREATE_CHILD_SA of an established one, and decodePayloadChain',
  async setup() {
    const { w, wire } = await recordedWorld();
    // The inner chains of every recorded protected message, as the receiver decrypted them.
    const seeds: Uint8Array[] = [];
    for (const d of wire) {
      const m = decodeMessage(d.bytes);
      if (!m.ok || !m.value.message.encrypted) continue;
      const engine = d.to.address === IP_A ? w.a : w.b;
      const sa = [...(engine as unknown as { sas: Map<string, IkeSa> }).sas.values()].find((s) =>
        s.spiI.equals(m.value.message.header.spiI),
      );
      const inner = sa?.unprotect(m.value, w.now);
      if (inner?.ok && inner.value) {
        const chain = encodePayloadChain(inner.value);
        seeds.push(Uint8Array.of(m.value.message.header.exchangeType, chain.firstPayload, ...chain.bytes));
      }
    }
    let attacker: Attacker | undefined;
    let host = 0;
    const stranger = () =>
      handshake(w.b, { address: IP_B, port: 500 }, `203.0.${(host >> 8) & 0xff}.${host++ & 0xff}`, w.now);
    return {
      seeds,
      async next(rng) {
        const s = rng.pick(seeds);
        const exchange = rng.chance(0.9)
          ? s[0]
          : rng.pick([ExchangeType.IKE_AUTH, ExchangeType.CREATE_CHILD_SA, ExchangeType.INFORMATIONAL, 37, 99]);
        // A stranger's IKE_AUTH needs a half-open SA: made here, so that its IKE_SA_INIT is not timed with the input.
        if (exchange === ExchangeType.IKE_AUTH && !attacker) attacker = stranger();
        if (rng.chance(0.5)) {
          const d = decodePayloadChain(s.subarray(2), s[1]);
          if (d.ok) {
            try {
              const c = encodePayloadChain(mutatePayloads(rng, d.value));
              return Uint8Array.of(exchange, c.firstPayload, ...c.bytes);
            } catch {
              // a field the encoder refuses: bytes instead
            }
          }
        }
        return Uint8Array.of(
          exchange,
          rng.chance(0.9) ? s[1] : rng.pick([PayloadType.IDi, PayloadType.N, PayloadType.D, 0, 200]),
          ...mutateBytes(
            rng,
            s.subarray(2),
            seeds.map((x) => x.subarray(2)),
          ),
        );
      },
      async run(input) {
        if (input.length < 2) return;
        const [exchange, first] = [input[0], input[1]];
        const chain = input.subarray(2);
        typedResult(decodePayloadChain(chain, first), 'decodePayloadChain');
        if (exchange === ExchangeType.IKE_AUTH) {
          // A stranger with a fresh half-open SA: its IKE_AUTH ends it (answered or refused).
          const a = attacker ?? stranger();
          attacker = undefined;
          const o = w.b.receive(a.from, sealChain(a.sa, exchange, 1, first, chain), w.now, 4500);
          checkOutput(o);
          return;
        }
        // The peer: A's established SA, at the message id B expects.
        let sa = establishedSa(w.a);
        if (!sa || !establishedSa(w.b)) {
          w.wire = [];
          w.reset();
          w.advance(w.now + 61_000);
          w.connect('a');
          sa = establishedSa(w.a);
          if (!sa) throw new Error('could not re-establish the IKE SA');
        }
        const peer = [...(w.b as unknown as { sas: Map<string, IkeSa> }).sas.values()].find((s) =>
          s.spiI.equals(sa.spiI),
        );
        const id = peer?.expectRequestId ?? sa.nextRequestId;
        const o = w.b.receive({ address: IP_A, port: 4500 }, sealChain(sa, exchange, id, first, chain), w.now, 4500);
        checkOutput(o);
        w.now += 1;
      },
    };
  },
};
