/* The executor, packets from the outside: group ESP (raw or in UDP) and tunnel-mode datagrams from
 * the tunnel port (docs/executor.md; see executor.h for why it is native). */
#include "executor_state.h"

static int in_ranges(const uint32_t *r, uint32_t n, uint32_t ip) {
  for (uint32_t i = 0; i < n; i++)
    if (ip >= r[2 * i] && ip <= r[2 * i + 1]) return 1;
  return 0;
}


int exec_decrypt(executor *ex, rule *r, const uint8_t *pkt, size_t len, const ipv4_info *ip, uint8_t *out,
                 exec_note *note) {
  uint8_t k[4];
  uint32_t spi;
  uint64_t seq;
  size_t plen;
  uint8_t nh;
  if (ip->proto != IPPROTO_ESP_ && ip->proto != IPPROTO_UDP_) return C_DROP_UNSOLICITED_PLAIN;
  /* Our ESP always leaves with DF (the carried form): a fragment of ESP cannot be opened. */
  if (ip->frag & (IP_MF | IP_OFFMASK)) return C_DROP_FRAGMENT;
  const uint8_t *esp = pkt + ip->ihl;
  size_t elen = ip->tot - ip->ihl;
  if (ip->proto == IPPROTO_UDP_) {
    /* ESP in UDP to port 4500, its UDP length exactly the IP payload's; the UDP checksum is not
     * checked (RFC 3948 section 3.1: the ICV covers what matters). */
    if (elen < GROUP_UDP_HEADER || rd16(esp + 2) != GROUP_UDP_PORT) return C_DROP_UNSOLICITED_PLAIN;
    if (rd16(esp + 4) != elen) return C_DROP_MALFORMED;
    esp += GROUP_UDP_HEADER;
    elen -= GROUP_UDP_HEADER;
  }
  if (esp_parse(esp, elen, &spi, &seq) != 0) return C_DROP_MALFORMED;
  u32_key(k, spi);
  rxsa *rx = (rxsa *)table_find(&ex->rx, k, 4);
  if (!rx) return C_PUNT_UNKNOWN_SPI;
  if (rx->vpn != r->vpn) return C_DROP_VPN_MISMATCH;
  if (rx->sender != r->peer) return C_DROP_PEER_MISMATCH;
  if (!replay_check(&rx->w, seq)) return C_DROP_REPLAY;
  if (esp_open(&rx->a, esp, elen, ESP_AAD_ESN, out + ip->ihl, &plen, &nh) != 0) return C_DROP_AUTH_FAILED;
  replay_accept(&rx->w, seq);
  if (nh == 4) {
    /* Carried form: the whole inner packet, for this path only (a member may not smuggle packets
     * for other terminals); it goes on with the outer TOS and TTL, as the transport form does. */
    ipv4_info in;
    uint8_t *inner = out + ip->ihl;
    if (parse_ipv4(inner, plen, &in) != 0 || in.tot != plen || memcmp(inner + 12, pkt + 12, 8) != 0) return C_DROP_MALFORMED;
    memmove(out, inner, plen);
    out[1] = pkt[1];
    out[8] = pkt[8];
    ipv4_set_checksum(out, in.ihl);
    note->out_len = plen;
  } else {
    memcpy(out, pkt, ip->ihl);
    out[9] = nh;
    wr16(out + 2, (uint16_t)(ip->ihl + plen));
    ipv4_set_checksum(out, ip->ihl);
    note->out_len = ip->ihl + plen;
  }
  note->out = out;
  note->vpn = rx->vpn;
  note->spi = spi;
  note->seq = seq;
  memcpy(note->sender, ex->ids[rx->sender].name, (size_t)ex->ids[rx->sender].len + 1);
  ex->counters[C_DECRYPT_PACKETS]++;
  ex->counters[C_DECRYPT_BYTES] += len;
  return V_FORWARD_DECRYPT;
}


int exec_tunnel_decrypt(executor *ex, const uint8_t src[4], uint16_t sport, const uint8_t *d, size_t len, double now,
                        uint8_t *out, exec_note *note) {
  uint8_t k[4];
  size_t plen;
  uint8_t nh;
  ipv4_info ip;
  if (len == 1 && d[0] == 0xff) return C_DROP_TUNNEL_KEEPALIVE;
  if (len < 4) return C_DROP_MALFORMED;
  uint32_t spi = rd32(d);
  if (spi == 0) return C_PUNT_IKE; /* the non-ESP marker: IKE */
  uint32_t seq = len >= 8 ? rd32(d + 4) : 0;
  if (len < ESP_TUNNEL_MIN || (len - ESP_HDR_LEN - ESP_ICV_LEN) % 4 != 0 || seq == 0) return C_DROP_MALFORMED;
  u32_key(k, spi);
  ttrxsa *rx = (ttrxsa *)table_find(&ex->trx, k, 4);
  if (!rx) return C_PUNT_UNKNOWN_SPI;
  if (!replay_check(&rx->w, seq)) {
    rx->replay_drops++;
    return C_DROP_REPLAY;
  }
  if (esp_open(&rx->a, d, len, ESP_AAD_SEQ32, out, &plen, &nh) != 0) {
    rx->auth_failures++;
    return C_DROP_AUTH_FAILED;
  }
  /* Authenticated: the sequence number is spent whatever the content turns out to be. */
  replay_accept(&rx->w, seq);
  rx->last_src = rd32(src);
  rx->last_port = sport;
  if (nh == 59) return C_DROP_TUNNEL_DUMMY;
  if (nh != 4 || parse_ipv4(out, plen, &ip) != 0) return C_DROP_MALFORMED;
  uint32_t isrc = rd32(out + 12), idst = rd32(out + 16);
  if (!in_ranges(rx->ranges + 2 * rx->nlocal, rx->nremote, isrc) || !in_ranges(rx->ranges, rx->nlocal, idst)) {
    rx->selector_drops++;
    return C_DROP_SELECTOR;
  }
  rule *r = find_rule(ex, SIDE_OUTSIDE, out);
  if (r) {
    if (r->action == ACT_DISCARD) {
      rule_used(r, ip.tot, now);
      return C_DROP_DISCARD;
    }
    if (r->action == ACT_ENCRYPT && r->vpn != rx->vpn) return C_DROP_VPN_MISMATCH;
    if (r->action == ACT_ENCRYPT && r->peer != rx->peer) return C_DROP_PEER_MISMATCH;
    rule_used(r, ip.tot, now);
  }
  rx->packets++;
  rx->bytes += ip.tot;
  rx->last_used = now;
  /* Only what the inner header covers goes on: the rest is TFC padding (RFC 4303 section 2.7). */
  note->out = out;
  note->out_len = ip.tot;
  note->vpn = rx->vpn;
  note->spi = spi;
  note->seq = seq;
  note_peer(ex, rx->peer, note);
  ex->counters[C_TUNNEL_DECRYPT_PACKETS]++;
  ex->counters[C_TUNNEL_DECRYPT_BYTES] += len;
  return V_FORWARD_TUNNEL_DECRYPT;
}
