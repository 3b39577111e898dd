// The MTU of the gateway's WAN side, read from its outside interfaces: the core's path MTU starts
// from it (the ESP it sends must fit the link it leaves by), and follows it when an operator
// changes an interface's MTU at run time. Smaller MTUs further along the path are the core's to
// learn from ICMP (src/core/pmtu.ts).
import { readFileSync } from 'node:fs';
import { ipToBytes, type Ip } from '../base/addr.js';
import type { NativeBinding } from '../native/binding.js';

/**
 * The smallest MTU among the interfaces, or undefined when none can be read. An interface's IPv6
 * MTU (net.ipv6.conf.IF.mtu: set by hand, or lowered by a router advertisement's MTU option) may
 * be below its link MTU; the smaller counts, since the gateway's ESP of either family leaves there.
 */
export function interfacesMtu(
  ifaces: readonly string[],
  read: (path: string) => string = (p) => readFileSync(p, 'utf8'),
): number | undefined {
  let min: number | undefined;
  const take = (mtu: number, least: number) => {
    if (Number.isInteger(mtu) && mtu >= least && (min === undefined || mtu < min)) min = mtu;
  };
  for (const i of ifaces) {
    try {
      take(Number(read(`/sys/class/net/${i}/mtu`).trim()), 68);
    } catch {
      continue; // gone (being reconfigured): the others decide, or the last value stays
    }
    try {
      take(Number(read(`/proc/sys/net/ipv6/conf/${i}/mtu`).trim()), 1280);
    } catch {
      /* no IPv6 on this interface or host: its link MTU decides */
    }
  }
  return min;
}

/** The path MTU for the core: the outside interfaces' MTU, or the configured `pathMtu` if that is smaller. */
export function wanPathMtu(
  configured: number | undefined,
  ifaces: readonly string[],
  read?: (path: string) => string,
): number {
  const mtu = Math.min(configured ?? Infinity, interfacesMtu(ifaces, read) ?? Infinity);
  return Number.isFinite(mtu) ? Math.min(mtu, 65535) : 1500;
}

/** The kernel's path MTU toward an address (the route's, lowered by ICMP it received), or undefined. */
export function kernelPathMtu(binding: Pick<NativeBinding, 'kernelPathMtu'>, address: Ip): number | undefined {
  const mtu = binding.kernelPathMtu(ipToBytes(address));
  return mtu >= 68 ? mtu : undefined;
}
