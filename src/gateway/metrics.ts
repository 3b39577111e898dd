// Prometheus metrics of a gateway, read from the core's counters at scrape time (no per-packet
// work in JavaScript): drops by where and why, search events, packets and bytes by operation,
// and key-table gauges.
import { Gauge, Registry } from 'prom-client';
import { mirroredCounter } from '../base/metrics.js';
import type { GatewayCore } from '../core/gateway-core.js';

/** `allStats` adds the datapath's and the kernel's counters to the core's (default: the core's only). */
export function gatewayRegistry(
  core: () => GatewayCore,
  gatewayId: string,
  allStats: () => Record<string, number> = () => core().stats(),
): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ gateway: gatewayId });
  const stats = () => Object.entries(allStats());

  mirroredCounter(
    registry,
    'kasane_drops_total',
    'Packets dropped, by where the decision was made and why',
    ['by', 'reason'],
    () =>
      stats().flatMap(([k, v]): [Record<string, string>, number][] => {
        if (k.startsWith('executor.drop.')) return [[{ by: 'executor', reason: k.slice(14) }, v]];
        if (k.startsWith('drop.')) return [[{ by: 'core', reason: k.slice(5) }, v]];
        if (k === 'datapath.punt.dropped') return [[{ by: 'datapath', reason: 'punt-queue-full' }, v]];
        if (k === 'datapath.rx.bad') return [[{ by: 'datapath', reason: 'bad-frame' }, v]];
        const q = /^kernel\.tun-(inside|outside)\.queue-dropped$/.exec(k);
        if (q) return [[{ by: 'kernel', reason: `tun-${q[1]}-queue-full` }, v]];
        return [];
      }),
  );
  mirroredCounter(registry, 'kasane_packets_total', 'Packets executed by the key table, by operation', ['op'], () =>
    stats().flatMap(([k, v]): [Record<string, string>, number][] => {
      const m = /^executor\.(encrypt|decrypt|plain)\.packets$/.exec(k);
      return m ? [[{ op: m[1] }, v]] : [];
    }),
  );
  mirroredCounter(registry, 'kasane_bytes_total', 'Bytes executed by the key table, by operation', ['op'], () =>
    stats().flatMap(([k, v]): [Record<string, string>, number][] => {
      const m = /^executor\.(encrypt|decrypt|plain)\.bytes$/.exec(k);
      return m ? [[{ op: m[1] }, v]] : [];
    }),
  );
  mirroredCounter(
    registry,
    'kasane_search_events_total',
    'Key-search events (started, completed, relayed, retry, failed, ...)',
    ['event'],
    () =>
      stats().flatMap(([k, v]): [Record<string, string>, number][] =>
        k.startsWith('search.') && !['search.originating', 'search.relaying'].includes(k)
          ? [[{ event: k.slice(7) }, v]]
          : [],
      ),
  );
  new Gauge({
    name: 'kasane_key_table_paths',
    help: 'Key-table entries by action',
    labelNames: ['action'],
    registers: [registry],
    collect() {
      const counts: Record<string, number> = { encrypt: 0, plain: 0, discard: 0, pending: 0 };
      for (const p of core().paths()) counts[p.action]++;
      for (const [action, n] of Object.entries(counts)) this.set({ action }, n);
    },
  });
  new Gauge({
    name: 'kasane_searches_in_flight',
    help: 'Searches this gateway is running (originating) or relaying',
    labelNames: ['role'],
    registers: [registry],
    collect() {
      const s = core().stats();
      this.set({ role: 'originating' }, s['search.originating'] ?? 0);
      this.set({ role: 'relaying' }, s['search.relaying'] ?? 0);
    },
  });
  mirroredCounter(
    registry,
    'kasane_pmtu_events_total',
    'Path MTU: ICMP about our ESP accepted, estimates learned and expired, ESP packets made by fragmenting before encryption',
    ['event'],
    () =>
      stats().flatMap(([k, v]): [Record<string, string>, number][] => {
        if (k === 'executor.encrypt.fragments') return [[{ event: 'fragments' }, v]];
        return ['pmtu.icmp', 'pmtu.learned', 'pmtu.expired'].includes(k) ? [[{ event: k.slice(5) }, v]] : [];
      }),
  );
  new Gauge({
    name: 'kasane_path_mtu_bytes',
    help: "Path MTU toward other gateways: the outside interfaces' MTU, or the configured pathMtu below it",
    registers: [registry],
    collect() {
      this.set(core().stats()['pmtu.path'] ?? 0);
    },
  });
  new Gauge({
    name: 'kasane_pmtu_learned_peers',
    help: 'Peers (and outer layerings) with a smaller path MTU learned from ICMP, not yet aged out',
    registers: [registry],
    collect() {
      this.set(core().stats()['pmtu.learned-peers'] ?? 0);
    },
  });
  new Gauge({
    name: 'kasane_receive_sas_awaiting_floor',
    help: "Receiving SAs that an earlier run used and that take no ESP until their sender's floor is learned (after a restart)",
    registers: [registry],
    collect() {
      this.set(core().stats()['rx-floor.waiting'] ?? 0);
    },
  });
  new Gauge({
    name: 'kasane_pending_packets',
    help: 'Packets buffered while their path is being searched',
    registers: [registry],
    collect() {
      this.set(core().stats()['pending.packets'] ?? 0);
    },
  });
  return registry;
}
