// The wake-up channel's datagrams as anyone on the network can send them to the authority's UDP
// port: parseDatagram (every refusal a typed result) and the subscription table's `receive`, which
// must never throw and count every datagram it does not accept as a drop.
import { encodeDatagram, parseDatagram, pushKey } from '../../src/authority/push-datagram.js';
import { PushChannel } from '../../src/authority/push.js';
import { Finding, type FuzzTarget } from '../harness.js';
import { mutateBytes } from '../mutate.js';
import { typedResult } from '../oracle.js';

const NOW = Date.UTC(2026, 11, 7, 1);

export const pushDatagrams: FuzzTarget = {
  name: 'push-datagram',
  description: "wake-up channel datagrams (parseDatagram, then the authority's subscription table)",
  async setup() {
    const secret = new Uint8Array(32).fill(9);
    const keyId = Math.floor(NOW / 1000);
    const key = pushKey(secret, 'gw-1', keyId);
    const seeds = [
      encodeDatagram({ type: 'subscribe', keyId, seq: NOW, cursor: 42, gateway: 'gw-1' }, key),
      encodeDatagram({ type: 'subscribe', keyId, seq: NOW + 1, cursor: 0, gateway: '東京-gw' }, key),
      encodeDatagram({ type: 'ack', keyId, seq: NOW, version: 42 }, key),
      encodeDatagram({ type: 'wake', keyId, seq: NOW, version: 43, reset: true }, key),
    ].map((b) => new Uint8Array(b));
    const channel = new PushChannel({
      secret,
      now: () => NOW,
      send: () => undefined,
      check: async (names) => ({
        version: 50,
        directoryVersion: 1,
        gateways: new Map(names.map((n) => [n, { active: true, changedVersion: 40 }])),
      }),
      refreshSeconds: 25,
      port: 9,
    });
    const handled = (): number => {
      const s = channel.status();
      return Object.values(s.drops).reduce((a, b) => a + b, 0) + s.subscriptions;
    };
    return {
      seeds,
      next: (rng) => (rng.chance(0.05) ? rng.bytes(rng.size(120)) : mutateBytes(rng, rng.pick(seeds), seeds)),
      run(input) {
        typedResult(parseDatagram(input), 'parseDatagram');
        const before = handled();
        const seqBefore = channel.status().acks;
        channel.receive(input, '192.0.2.1', 4500);
        // Each datagram is dropped (counted) or accepted (a record kept or refreshed).
        if (handled() === before && channel.status().acks === seqBefore && channel.size === 0)
          throw new Finding('violation', 'a datagram was neither dropped nor accepted');
      },
      close: () => channel.close(),
    };
  },
};
