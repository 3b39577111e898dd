// Packets from the outside (the WAN) that the executor could not settle by itself: ESP for a path
// without an entry (we may have aged it out before the sender did), and plaintext to our terminals.
import type { CoreContext } from './context.js';
import { ipv4Dst, ipv4Protocol, ipv4Src, parseIpv4, PROTO_ESP } from './packet/ipv4.js';
import { espPeek } from '../crypto/esp.js';

export function onOutsideMiss(ctx: CoreContext, packet: Uint8Array, now: number): void {
  const local = ipv4Dst(packet);
  const remote = ipv4Src(packet);
  const t = ctx.config.timers;
  if (ipv4Protocol(packet) === PROTO_ESP) {
    const ip = parseIpv4(packet);
    const peek = ip.ok ? espPeek(ip.value.payload) : undefined;
    if (!peek || !peek.ok) return ctx.drop('malformed', packet);
    const sa = ctx.ring.rxSa(peek.value.spi);
    if (!sa) {
      // Not ours: either another layer's ESP for a terminal we do not protect, or unknown.
      if (ctx.ring.coveringVpns(local).length === 0) return forwardPlain(ctx, packet, now, 'unprotected');
      return ctx.drop('unknown-spi', packet);
    }
    // The receive-side check: the sender must put the source terminal into this VPN, and we the destination.
    if (!ctx.ring.memberCovers(sa.vpnId, sa.sender, remote) || !ctx.ring.coveringVpns(local).includes(sa.vpnId)) {
      return ctx.drop('membership', packet);
    }
    // After a restart: not before the sender told us where its sequence numbers stand.
    if (ctx.floors.isWaiting(sa.spi)) return ctx.floors.onEsp(ctx, packet, sa.spi, now);
    ctx.install(
      {
        local,
        remote,
        action: 'encrypt',
        vpnId: sa.vpnId,
        peer: sa.sender,
        mtu: ctx.config.pathMtu,
        layers: [{ vpnId: sa.vpnId, gateways: [sa.sender, ctx.config.id] }],
        reason: 'learned-from-esp',
        installedAt: now,
        lastUsed: now,
        expiresAt: now + t.hardLifetime,
      },
      now,
    );
    ctx.trace({ event: 'learn-from-esp', kind: 'data', detail: { local, remote, vpnId: sa.vpnId, peer: sa.sender } });
    const v = ctx.executor.process('outside', packet, now);
    if (v.kind === 'forward') ctx.emit(v.bytes, v.note);
    else ctx.drop(v.kind === 'drop' ? v.reason : `punt-${v.reason}`, packet);
    return;
  }
  if (ctx.ring.coveringVpns(local).length > 0 && !(ctx.plainAllowed(remote) && !ctx.ring.isProtected(remote))) {
    return ctx.drop('unsolicited-plain', packet);
  }
  forwardPlain(ctx, packet, now, 'unprotected');
}

function forwardPlain(ctx: CoreContext, packet: Uint8Array, now: number, reason: string): void {
  const local = ipv4Dst(packet);
  const remote = ipv4Src(packet);
  ctx.install(
    { local, remote, action: 'plain', layers: [], reason, installedAt: now, lastUsed: now, expiresAt: now + ctx.config.timers.hardLifetime },
    now,
  );
  const v = ctx.executor.process('outside', packet, now);
  if (v.kind === 'forward') ctx.emit(v.bytes, v.note);
  else ctx.drop(v.kind === 'drop' ? v.reason : `punt-${v.reason}`, packet);
}
