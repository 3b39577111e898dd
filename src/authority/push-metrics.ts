// Prometheus metrics of one authority process (GET /v1/metrics, administrators): the gateways it
// serves — waiting on the long poll, subscribed to the wake-up channel — and the channel's
// counters. Read at scrape time from the change stream and the channel (no work per event).
import { Gauge, Registry } from 'prom-client';
import { mirroredCounter } from '../base/metrics.js';
import type { PushChannel } from './push.js';
import type { AuthorityService } from './service.js';

export function authorityMetrics(service: AuthorityService, push: PushChannel | undefined): Registry {
  const registry = new Registry();
  new Gauge({
    name: 'kasane_authority_waiting_gateways',
    help: 'Gateways waiting on the long poll of this process',
    registers: [registry],
    collect() {
      this.set(service.changeStream.waiting);
    },
  });
  if (!push) return registry;
  new Gauge({
    name: 'kasane_authority_push_subscriptions',
    help: 'Gateways subscribed to the wake-up channel of this process',
    registers: [registry],
    collect() {
      this.set(push.size);
    },
  });
  new Gauge({
    name: 'kasane_authority_push_pending_wakes',
    help: 'WAKEs sent and not yet acknowledged by a SUBSCRIBE',
    registers: [registry],
    collect() {
      this.set(push.status().pendingWakes);
    },
  });
  mirroredCounter(
    registry,
    'kasane_authority_push_drops_total',
    'Wake-up channel datagrams dropped (never answered), by reason',
    ['reason'],
    () => Object.entries(push.status().drops).map(([reason, n]) => [{ reason }, n]),
  );
  mirroredCounter(
    registry,
    'kasane_authority_push_sent_total',
    'Wake-up channel datagrams sent, by kind',
    ['kind'],
    () => {
      const s = push.status();
      return [
        [{ kind: 'ack' }, s.acks],
        [{ kind: 'wake' }, s.wakes],
        [{ kind: 'deliver' }, s.delivers],
        // Resends of WAKEs and DELIVERs alike.
        [{ kind: 'wake-resend' }, s.resends],
      ];
    },
  );
  mirroredCounter(
    registry,
    'kasane_authority_push_too_large_total',
    'Answers too large for a DELIVER datagram: a WAKE (and a fetch over TLS) instead',
    [],
    () => [[{}, push.status().tooLarge]],
  );
  return registry;
}
