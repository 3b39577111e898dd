// Packets from the outside (the WAN) that the executor could not settle by itself: ESP for a path
// without an entry (we may have aged it out before the sender did, or it is not for our terminals
// at all and passes through), and plaintext to our terminals.
import { forwardPlain, type CoreContext } from './context.js';
import { ipv4Protocol, PROTO_ICMP } from './packet/ipv4.js';
import { ipVersion, packetDst, packetSrc } from './packet/ip.js';
import { groupEspOfPacket } from './packet/group-esp.js';
import { parseEspFragNeeded, parseEspPacketTooBig } from './pmtu.js';
import { espPeek } from '../crypto/esp.js';

export function onOutsideMiss(ctx: CoreContext, packet: Uint8Array, now: number): void {
  const local = packetDst(packet);
  const remote = packetSrc(packet);
  const t = ctx.config.timers;
  const esp = groupEspOfPacket(packet);
  if (esp) {
    const peek = espPeek(esp);
    if (!peek.ok) return ctx.drop('malformed', packet);
    const sa = ctx.ring.rxSa(peek.value.spi);
    const covering = ctx.ring.coveringVpns(local);
    // Is it for one of our terminals? Only if we put the destination into the SA's VPN. A bump in
    // the wire relays, untouched, whatever is not for its terminals: another layer's ESP, or ESP
    // of a VPN we belong to for other prefixes (a hub on the path between two other members),
    // exactly as it relays their search messages. It does not know every SPI to tell them apart.
    if (!sa || !covering.includes(sa.vpnId)) {
      if (covering.length === 0) return forwardPlain(ctx, 'outside', packet, now, 'unprotected');
      // A terminal we protect, in other VPNs only: no layer of that VPN ends beyond us, so this
      // ESP has no business there (an outer layer would have come first).
      return ctx.drop(sa ? 'membership' : 'unknown-spi', packet);
    }
    // The receive-side check: the sender must put the source terminal into this VPN (we put the destination).
    if (!ctx.ring.memberCovers(sa.vpnId, sa.sender, remote)) return ctx.drop('membership', packet);
    // After a restart: not before the sender told us where its sequence numbers stand.
    if (ctx.floors.isWaiting(sa.spi)) return ctx.floors.onEsp(ctx, packet, sa.spi, now);
    ctx.install(
      {
        local,
        remote,
        action: 'encrypt',
        vpnId: sa.vpnId,
        peer: sa.sender,
        mtuReserve: 0,
        layers: [{ vpnId: sa.vpnId, gateways: [sa.sender, ctx.config.id] }],
        reason: 'learned-from-esp',
        installedAt: now,
        lastUsed: now,
        expiresAt: now + t.hardLifetime,
      },
      now,
    );
    ctx.trace({ event: 'learn-from-esp', kind: 'data', detail: { local, remote, vpnId: sa.vpnId, peer: sa.sender } });
    const punt = ctx.execute('outside', packet, now, true);
    if (punt !== undefined) ctx.drop(`punt-${punt}`, packet);
    return;
  }
  // A router could not forward ESP one of our terminals sent: the ICMP (ICMPv6 Packet Too Big) is
  // for us (src/core/pmtu.ts).
  const f =
    ipVersion(packet) === 6
      ? parseEspPacketTooBig(packet)
      : ipv4Protocol(packet) === PROTO_ICMP
        ? parseEspFragNeeded(packet)
        : undefined;
  if (f !== undefined && f.local === local && ctx.ring.coveringVpns(local).length > 0)
    return ctx.onEspFragNeeded(f, packet, now);
  if (ctx.ring.coveringVpns(local).length > 0 && !(ctx.plainAllowed(remote) && !ctx.ring.isProtected(remote))) {
    return ctx.drop('unsolicited-plain', packet);
  }
  forwardPlain(ctx, 'outside', packet, now, 'unprotected');
}
