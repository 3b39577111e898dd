// Every fuzz target, in the order `npm run fuzz` runs them.
import type { FuzzTarget } from '../harness.js';
import { gatewayCore, packets, searchMessage } from './packets.js';
import { esp } from './esp.js';
import { ikeChain, ikeMessage } from './ike.js';
import { certificates, csrs, permits } from './pki.js';
import { api, apiWire } from './api.js';
import { configs, topology } from './files.js';
import { pushDatagrams } from './push.js';

export const TARGETS: FuzzTarget[] = [
  packets,
  searchMessage,
  gatewayCore,
  esp,
  ikeMessage,
  ikeChain,
  permits,
  certificates,
  csrs,
  api,
  apiWire,
  pushDatagrams,
  topology,
  configs,
];
