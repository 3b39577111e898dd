// 64-byte packets per second hostA → hostB: iperf3 UDP with 36-byte payloads (20 IP + 8 UDP + 36
// = 64-byte IP packets), offered as fast as the sender can. What arrives at hostB per second is
// what the path sustains; the loss says how much more was offered. On 2 cores the sender competes
// with the gateways, so for plain routing the sender itself is usually the limit (reported).
import type { Testbed } from '../../src/testbed/netns.js';
import { iperfClient, iperfJson, withIperfServer } from './measure.js';
import type { PeerTopology } from './topology.js';

const PORT = 5202;
/** UDP payload bytes that make a 64-byte IPv4 packet. */
export const SMALL_PAYLOAD = 64 - 20 - 8;

export interface SmallPacketResult {
  /** Packets per second received at hostB. */
  pps: number;
  /** Packets per second the sender put out. */
  sentPps: number;
  /** % of the sent packets that never arrived. */
  lossPct: number;
}

interface UdpJson {
  error?: string;
  end?: { sum?: { packets?: number; lost_packets?: number; seconds?: number } };
}

export function parseUdpJson(text: string): SmallPacketResult {
  const s = iperfJson<UdpJson>(text).end?.sum;
  if (typeof s?.packets !== 'number' || typeof s.lost_packets !== 'number' || !s.seconds)
    throw new Error('iperf3 UDP JSON has no end.sum.packets/lost_packets/seconds');
  const received = s.packets - s.lost_packets;
  return {
    pps: received / s.seconds,
    sentPps: s.packets / s.seconds,
    lossPct: s.packets > 0 ? (100 * s.lost_packets) / s.packets : 0,
  };
}

export async function smallPackets(
  tb: Testbed,
  topo: PeerTopology,
  seconds: number,
  signal?: AbortSignal,
): Promise<SmallPacketResult> {
  const udp = ['-u', '-b', '0', '-l', String(SMALL_PAYLOAD)];
  return withIperfServer(tb, topo, PORT, signal, async () =>
    parseUdpJson(await iperfClient(tb, topo, PORT, udp, seconds, signal)),
  );
}
