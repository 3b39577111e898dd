// The wake-up channel across replicas (issue 15), with two `kasane authority serve` processes on one
// PostgreSQL database and gateways following through the gateway's own code (authority-link.ts):
// a change made through one replica reaches, within 1 s, a gateway subscribed to the other (its
// WAKE comes from that replica's own view of the database); after kill -9 of a gateway's replica
// the gateway moves to the survivor, subscribes there, and misses no change; the key one replica
// hands out is checked by the other (the push secret is copied by `authority replica`).
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { createSocket } from 'node:dgram';
import { gatewayClient } from '../../src/authority/client.js';
import { encodeDatagram, parseDatagram, verifyDatagram } from '../../src/authority/push-datagram.js';
import { postgresForTests } from './helpers/postgres.js';
import { FollowingGateway, ReplicaSet, until } from './helpers/replicas.js';

const pg = await postgresForTests();
after(() => pg.server?.stop());

describe('wake-up channel with two replicas', { skip: pg.skip }, () => {
  it('wakes gateways on either replica within 1 s, and after kill -9 they move, subscribe and miss nothing', async () => {
    const set = await ReplicaSet.create({ database: await pg.server!.createDatabase(), replicas: 2, leaseMs: 2000 });
    const followers: FollowingGateway[] = [];
    const states = new Map<string, string[]>();
    try {
      const [r0, r1] = set.replicas;
      await r0.admin.createVpn({ name: 'corp', id: 1, rotationPeriodMs: 0 });
      for (let g = 0; g < 4; g++) {
        const gw = await set.gateway(`gw${g}`, `192.0.2.${g + 1}`, g % 2);
        await set.replicas[g % 2].admin.addMember('corp', gw.name, [`10.${g}.0.0/16`]);
        // Gateway g starts at replica g % 2 and knows both.
        const urls = g % 2 === 0 ? set.urls : [...set.urls].reverse();
        const log: string[] = [];
        states.set(gw.name, log);
        followers.push(new FollowingGateway(gw.name, gw.data, urls, { push: { onState: (e) => log.push(e.state) } }));
      }
      for (const f of followers) await f.start();
      await until(
        () => [...states.values()].every((s) => s.includes('subscribed')),
        'every gateway is subscribed to the wake-up channel',
      );
      const [s0, s1] = await Promise.all([r0.admin.status(), r1.admin.status()]);
      assert.deepEqual([s0.push?.subscriptions, s1.push?.subscriptions], [2, 2]);

      // A key from replica 1, to be checked by replica 0 below (the push secret is copied by `authority replica`).
      const probe = gatewayClient((await set.gateway('probe', '192.0.2.99', 1)).bundle, undefined, { urls: [r1.url] });
      const offer = await probe.pushOffer();
      const offerClock = offer.now - Date.now();
      probe.close();
      assert.deepEqual([s0.waitingGateways, s1.waitingGateways], [0, 0], 'no long poll held');

      // A change through either replica reaches the gateways of both within 1 s.
      for (const r of [r0, r1]) {
        const t0 = Date.now();
        const rotated = await r.admin.rotateVpn('corp');
        await until(() => followers.every((f) => f.epochs('corp').includes(rotated.epoch)), `epoch ${rotated.epoch}`);
        assert.ok(
          Date.now() - t0 < 1000,
          `a rotation through ${r.url} reached every gateway after ${Date.now() - t0} ms`,
        );
      }

      // kill -9 of replica 1: its gateways move to replica 0, subscribe there, and get what was made meanwhile.
      await set.kill(1);
      const rotated = await r0.admin.rotateVpn('corp');
      await r0.admin.addDirectory('203.0.113.0/24', 'after the kill');
      await until(
        () =>
          followers.every(
            (f) =>
              f.epochs('corp').includes(rotated.epoch) &&
              f.snapshot!.protectedPrefixes.some((p) => p.toString() === '203.0.113.0/24'),
          ),
        'every gateway holds the changes made after the kill',
        15_000,
      );
      await until(async () => (await r0.admin.status()).push?.subscriptions === 4, 'all four subscribed to replica 0');
      for (const f of followers) assert.ok(f.link.client.endpoint.includes(r0.url), `${f.name} is on replica 0`);
      const audit = await r0.admin.audit({ limit: 1000 });
      const rotations = audit.filter((e) => e.action === 'vpn.rotate').map((e) => e.version);
      for (const f of followers) {
        const heard = new Set(f.events.map((e) => e.version));
        assert.deepEqual(
          rotations.filter((v) => !heard.has(v)),
          [],
          `${f.name} heard of every rotation`,
        );
      }
      // Another change after the move: delivered by the survivor's channel within 1 s.
      const t0 = Date.now();
      const again = await r0.admin.rotateVpn('corp');
      await until(() => followers.every((f) => f.epochs('corp').includes(again.epoch)), `epoch ${again.epoch}`);
      assert.ok(Date.now() - t0 < 1000, `after the move: ${Date.now() - t0} ms`);
      assert.equal((await r0.admin.status()).waitingGateways, 0);

      // Replica 0 answers a SUBSCRIBE made with the key replica 1 handed out.
      const socket = createSocket('udp4');
      const answers: Buffer[] = [];
      socket.on('message', (b) => answers.push(b));
      const key = Buffer.from(offer.key, 'base64');
      const seq = Date.now() + offerClock;
      socket.send(
        encodeDatagram({ type: 'subscribe', keyId: offer.keyId, seq, cursor: 0, gateway: 'probe' }, key),
        (await r0.admin.status()).push!.port,
        r0.host,
      );
      await until(() => answers.length > 0, 'the ACK of replica 0', 5000);
      socket.close();
      const ack = parseDatagram(answers[0]);
      assert.ok(ack.ok && ack.value.datagram.type === 'ack' && verifyDatagram(ack.value, key));
    } finally {
      for (const f of followers) await f.stop();
      await set.close();
    }
  });
});
