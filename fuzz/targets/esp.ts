// ESP in both executors (the TypeScript reference and the native one), differentially: group-mode
// ESP from the network, tunnel-mode ESP in UDP 4500, and plain packets from the LAN that get
// encrypted. Both must never throw and must give the same verdict, bytes included, for every input;
// their counters must agree too. Half of the ESP inputs are freshly sealed with the installed keys
// around a mutated inner packet, so that they authenticate and the checks behind decryption run.
import type { TunnelExecutor, Verdict } from '../../src/core/executor.js';
import { TsExecutor } from '../../src/core/ts-executor.js';
import { loadNative } from '../../src/native/binding.js';
import { NativeExecutor } from '../../src/native/native-executor.js';
import { sealTunnelEsp } from '../../test/support/executor-vectors.js';
import { icmpEcho, ipv4, randomKey, refEncrypt, tcp } from '../../test/native/support.js';
import { Finding, type FuzzTarget } from '../harness.js';
import { mutateBytes, mutateIpv4 } from '../mutate.js';
import type { Rng } from '../rng.js';

const A = '10.1.0.10';
const B = '10.2.0.10';
const GW1 = '192.0.2.1';
const GW2 = '198.51.100.2';
const GROUP = { spi: 0x1001, ...randomKey(1) };
const TUNNEL = { spi: 0x5151, ...randomKey(2) };
/** What the tunnel's two directions share: one Child SA pair with G1 over UDP 4500. */
const TUNNEL_ENDS = {
  vpnId: 3,
  peer: 'G1',
  key: TUNNEL.key,
  salt: TUNNEL.salt,
  localAddr: GW2,
  localPort: 4500,
  remoteAddr: GW1,
  remotePort: 4500,
};
const TUNNEL_HEX = { key: Buffer.from(TUNNEL.key).toString('hex'), salt: Buffer.from(TUNNEL.salt).toString('hex') };

const KIND_OUTSIDE = 0;
const KIND_INSIDE = 1;
const KIND_UDP = 2;

function install(ex: TunnelExecutor): void {
  ex.installRxSa({ spi: GROUP.spi, vpnId: 1, epoch: 1, sender: 'G1', key: GROUP.key, salt: GROUP.salt });
  ex.installTxSa({ spi: 0x2002, vpnId: 1, epoch: 1, key: GROUP.key, salt: GROUP.salt, nextSeq: 1n });
  ex.installPath({ local: B, remote: A, action: 'encrypt', vpnId: 1, peer: 'G1', mtu: 1400 });
  ex.installPath({ local: '10.2.0.11', remote: A, action: 'plain' });
  ex.installPath({ local: '10.2.0.12', remote: A, action: 'discard' });
  ex.installTunnelRx({
    spi: TUNNEL.spi,
    ...TUNNEL_ENDS,
    localSelectors: [{ start: '10.2.0.0', end: '10.2.0.255' }],
    remoteSelectors: [{ start: '10.1.0.0', end: '10.1.0.255' }],
  });
  ex.installTunnelTx({ spi: 0x6161, ...TUNNEL_ENDS });
  ex.installPath({
    local: '10.2.0.20',
    remote: A,
    action: 'encrypt',
    vpnId: 3,
    peer: 'G1',
    tunnel: { spi: 0x6161 },
  } as Parameters<TunnelExecutor['installPath']>[0]);
}

function innerPackets(): Uint8Array[] {
  return [
    ipv4({ src: A, dst: B, proto: 1, payload: icmpEcho(8, 1, 1, new TextEncoder().encode('kasane fuzz')) }),
    ipv4({
      src: A,
      dst: B,
      proto: 1,
      payload: icmpEcho(8, 2, 7, Uint8Array.from([0x4b, 0x53, 0x52, 0x43, 1, 1, 0, 0, 1, 2, 3, 4])),
    }),
    tcp({ src: A, dst: B, sport: 40000, dport: 443, seq: 1, flags: 0x02, options: Uint8Array.of(2, 4, 0x05, 0xb4) }),
    ipv4({ src: A, dst: B, proto: 17, payload: new Uint8Array(64).fill(7) }),
    ipv4({ src: A, dst: B, proto: 17, payload: new Uint8Array(1300).fill(9), df: true }),
  ];
}

function show(v: Verdict): string {
  return JSON.stringify(v, (_, x) =>
    typeof x === 'bigint' ? `${x}n` : x instanceof Uint8Array ? Buffer.from(x).toString('hex') : x,
  );
}

export const esp: FuzzTarget = {
  name: 'esp',
  description:
    'group-mode ESP, tunnel-mode ESP in UDP and LAN packets through the TypeScript and the native executor: no throw, the same verdicts and counters',
  async setup() {
    const ts = new TsExecutor();
    const native = loadNative();
    if (!native.ok && process.env.CI === 'true')
      throw new Error(`CI=true but the native addon is unavailable: ${native.error.message}`);
    const nat = native.ok ? NativeExecutor.create() : undefined;
    if (nat && !nat.ok) throw new Error(nat.error.message);
    const executors: TunnelExecutor[] = [ts, ...(nat?.ok ? [nat.value as unknown as TunnelExecutor] : [])];
    for (const e of executors) install(e);
    const inner = innerPackets();
    let seq = 1;
    const seal = (kind: number, p: Uint8Array): Uint8Array => {
      seq++;
      if (kind === KIND_UDP) return sealTunnelEsp(TUNNEL_HEX, TUNNEL.spi, seq, 4, p);
      return refEncrypt(GROUP, BigInt(seq), p);
    };
    const seeds: Uint8Array[] = [];
    for (const p of inner) {
      seeds.push(Uint8Array.of(KIND_OUTSIDE, ...refEncrypt(GROUP, BigInt(++seq), p)));
      seeds.push(Uint8Array.of(KIND_UDP, ...sealTunnelEsp(TUNNEL_HEX, TUNNEL.spi, ++seq, 4, p)));
      const back = ipv4({ src: B, dst: A, proto: p[9], payload: p.subarray(20) });
      seeds.push(Uint8Array.of(KIND_INSIDE, ...back));
    }
    let now = 1000;
    let n = 0;
    return {
      seeds,
      next(rng: Rng) {
        const seed = rng.pick(seeds);
        const kind = rng.chance(0.9) ? seed[0] : rng.int(3);
        if (kind !== KIND_INSIDE && rng.chance(0.5)) {
          // Authenticates: a mutated inner packet sealed with the installed keys.
          const p = mutateIpv4(rng, rng.pick(inner), inner);
          const sealed = seal(kind, p);
          return Uint8Array.of(kind, ...(rng.chance(0.2) ? mutateBytes(rng, sealed, [], 1) : sealed));
        }
        const body = seed.subarray(1);
        return Uint8Array.of(
          kind,
          ...(rng.chance(0.05)
            ? rng.bytes(rng.size(1600))
            : kind === KIND_UDP
              ? mutateBytes(rng, body, [])
              : mutateIpv4(
                  rng,
                  body,
                  seeds.map((s) => s.subarray(1)),
                )),
        );
      },
      run(input) {
        if (input.length === 0) return;
        now += 1;
        const kind = input[0] % 3;
        const body = input.subarray(1);
        const verdicts = executors.map((e) =>
          show(
            kind === KIND_UDP
              ? e.processUdp(GW1, 4500, body, now)
              : e.process(kind === KIND_INSIDE ? 'inside' : 'outside', body, now),
          ),
        );
        if (verdicts.length === 2 && verdicts[0] !== verdicts[1])
          throw new Finding(
            'mismatch',
            `the executors disagree:\n  ts:     ${verdicts[0].slice(0, 300)}\n  native: ${verdicts[1].slice(0, 300)}`,
          );
        if (executors.length === 2 && ++n % 1000 === 0) {
          const [c0, c1] = executors.map((e) =>
            JSON.stringify(Object.entries(e.counters()).sort(([a], [b]) => (a < b ? -1 : 1))),
          );
          if (c0 !== c1)
            throw new Finding('mismatch', `the executors' counters disagree:\n  ts:     ${c0}\n  native: ${c1}`);
        }
      },
    };
  },
};
