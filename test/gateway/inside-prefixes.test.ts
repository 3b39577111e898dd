// The LANs a gateway serves first-hand, read from its inside interfaces: IPv4 and IPv6 prefixes,
// never the link-local ones (they name no LAN; link-local traffic is never intercepted).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { insidePrefixes } from '../../src/gateway/daemon.js';

/** What `ip -j addr show dev IF scope global` prints for a dual-stack LAN interface (trimmed). */
const SHOW: Record<string, string> = {
  lan0: JSON.stringify([
    {
      ifname: 'lan0',
      addr_info: [
        { family: 'inet', local: '10.1.0.1', prefixlen: 24, scope: 'global' },
        { family: 'inet6', local: '2001:db8:1::1', prefixlen: 64, scope: 'global' },
        { family: 'inet6', local: '2001:db8:1::2', prefixlen: 64, scope: 'global' },
        { family: 'inet6', local: 'fe80::1', prefixlen: 64, scope: 'link' },
      ],
    },
  ]),
  lan1: JSON.stringify([{ ifname: 'lan1', addr_info: [{ family: 'inet6', local: 'fd00:2::1', prefixlen: 48, scope: 'global' }] }]),
  down: JSON.stringify([{ ifname: 'down' }]),
};

test('the inside interfaces\' prefixes of both families, once each, without link-local ones', () => {
  const got = insidePrefixes(['lan0', 'lan1', 'down'], (i) => SHOW[i]).map(String);
  assert.deepEqual(got, ['10.1.0.0/24', '2001:db8:1::/64', 'fd00:2::/48']);
});
