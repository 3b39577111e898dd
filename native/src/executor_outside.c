/* The executor, packets from the outside: group ESP (raw or in UDP) and tunnel-mode datagrams from
 * the tunnel port (docs/executor.md; see executor.h for why it is native). */
#include "executor_state.h"

static int in_ranges(const tunnel_range *r, uint32_t n, int family, const uint8_t *addr) {
  size_t alen = family == 6 ? 16 : 4;
  for (uint32_t i = 0; i < n; i++)
    if (r[i].family == family && memcmp(addr, r[i].start, alen) >= 0 && memcmp(addr, r[i].end, alen) <= 0) return 1;
  return 0;
}


/* The replay window of a receiving SA, which several reader threads use at once: checked before the
 * ICV (a replay costs no decryption), then checked and moved after it (window_accept: 0 when another
 * thread took the number in between). The lock is held for the window only, never for crypto. */
static int window_check(pthread_spinlock_t *l, const replay_window *w, uint64_t seq) {
  pthread_spin_lock(l);
  int fresh = replay_check(w, seq);
  pthread_spin_unlock(l);
  return fresh;
}

/* last, when given, takes from under the same lock: the source of the datagram that spent seq. */
static int window_accept(pthread_spinlock_t *l, replay_window *w, uint64_t seq, datagram_source *last,
                         const datagram_source *from) {
  pthread_spin_lock(l);
  int fresh = replay_check(w, seq);
  if (fresh) {
    replay_accept(w, seq);
    if (last) *last = *from;
  }
  pthread_spin_unlock(l);
  return fresh;
}

/* Group ESP (raw, or in UDP to port 4500) of an encrypting path, either IP version: the SA by SPI,
 * checked against the path and the replay window, then opened into out; the sequence number is
 * spent. -1 on success, else the verdict. */
static int open_group_esp(executor *ex, const rule *r, uint8_t proto, const uint8_t *esp, size_t elen, uint8_t *out,
                          rxsa **rxp, uint32_t *spi, uint64_t *seq, size_t *plen, uint8_t *nh) {
  if (proto == IPPROTO_UDP_) {
    /* ESP in UDP to port 4500, its UDP length exactly the IP payload's; the UDP checksum is not
     * checked (RFC 3948 section 3.1: the ICV covers what matters). */
    if (elen < GROUP_UDP_HEADER || rd16(esp + 2) != GROUP_UDP_PORT) return C_DROP_UNSOLICITED_PLAIN;
    if (rd16(esp + 4) != elen) return C_DROP_MALFORMED;
    esp += GROUP_UDP_HEADER;
    elen -= GROUP_UDP_HEADER;
  }
  if (esp_parse(esp, elen, spi, seq) != 0) return C_DROP_MALFORMED;
  rxsa *rx = sa_find(&ex->rx, *spi);
  if (!rx) return C_PUNT_UNKNOWN_SPI;
  if (rx->sa.vpn != r->vpn) return C_DROP_VPN_MISMATCH;
  if (rx->sender != r->peer) return C_DROP_PEER_MISMATCH;
  if (!window_check(&rx->wlock, &rx->w, *seq)) return C_DROP_REPLAY;
  if (esp_open(&rx->sa.a, esp, elen, ESP_AAD_ESN, out, plen, nh) != 0) return C_DROP_AUTH_FAILED;
  /* Checked again: another thread may have opened the same number meanwhile. */
  if (!window_accept(&rx->wlock, &rx->w, *seq, NULL, NULL)) return C_DROP_REPLAY;
  *rxp = rx;
  return -1;
}

/* What every group-ESP decryption reports once the packet is whole again (both IP versions). */
static int decrypted(executor *ex, const rxsa *rx, uint32_t spi, uint64_t seq, size_t len, uint8_t *out,
                     exec_note *note) {
  note->out = out;
  note->vpn = rx->sa.vpn;
  note->spi = spi;
  note->seq = seq;
  note_peer(ex, rx->sender, note);
  count(ex, C_DECRYPT_PACKETS, 1);
  count(ex, C_DECRYPT_BYTES, len);
  return V_FORWARD_DECRYPT;
}

/* A TCP SYN (or SYN-ACK) arriving decrypted announces at most the MSS this gateway can encrypt back
 * on the same path (its path MTU, the transport form, its own sending SA's encapsulation): the clamp
 * works in both directions, as iptables' --clamp-mss-to-pmtu does. The terminal behind us cannot learn
 * our path otherwise: an IPv6 terminal ignores a Packet Too Big below 1280, which a 1280 WAN needs. */
static void clamp_arriving(executor *ex, const rule *r, uint8_t *pkt, const ipv4_info *ip, const ipv6_info *ip6) {
  inner_info in;
  if (r->mtu < 0) return;
  inner_of(pkt, ip, ip6, &in);
  /* The SA lookup only for a SYN: every other segment of the flow passes at the cost of this test. */
  if (!in.tcp_syn_room || !(pkt[in.tcp_off + 13] & 0x02)) return;
  const txsa *tx = sa_find(&ex->tx, r->vpn);
  clamp_inner_mss(pkt, &in, r->mtu - ESP_OVERHEAD_MAX - (int64_t)(tx ? tx->udp : GROUP_UDP_HEADER));
}

int exec_decrypt(executor *ex, rule *r, const uint8_t *pkt, size_t len, const ipv4_info *ip, uint8_t *out,
                 exec_note *note) {
  uint32_t spi;
  uint64_t seq;
  size_t plen;
  uint8_t nh;
  if (ip->proto != IPPROTO_ESP_ && ip->proto != IPPROTO_UDP_) return C_DROP_UNSOLICITED_PLAIN;
  /* Our ESP always leaves with DF (the carried form): a fragment of ESP cannot be opened. */
  if (ip->frag & (IP_MF | IP_OFFMASK)) return C_DROP_FRAGMENT;
  rxsa *rx;
  int v = open_group_esp(ex, r, ip->proto, pkt + ip->ihl, ip->tot - ip->ihl, out + ip->ihl, &rx, &spi, &seq, &plen, &nh);
  if (v >= 0) return v;
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
    clamp_arriving(ex, r, out, &in, NULL);
  } else {
    memcpy(out, pkt, ip->ihl);
    out[9] = nh;
    wr16(out + 2, (uint16_t)(ip->ihl + plen));
    ipv4_set_checksum(out, ip->ihl);
    note->out_len = ip->ihl + plen;
    ipv4_info in = {.ihl = ip->ihl, .tot = ip->ihl + plen, .proto = nh, .frag = ip->frag};
    clamp_arriving(ex, r, out, &in, NULL);
  }
  return decrypted(ex, rx, spi, seq, len, out, note);
}


/* Group ESP over IPv6: the transport form (fixed header kept, ESP right after it) or the carried
 * form (ESP next header 41: the whole inner packet, for this path only). */
int exec_decrypt6(executor *ex, rule *r, const uint8_t *pkt, size_t len, const ipv6_info *ip, uint8_t *out,
                  exec_note *note) {
  uint32_t spi;
  uint64_t seq;
  size_t plen;
  uint8_t nh;
  /* Our ESP is never fragmented and has no extension headers before it. */
  if (ip->fragment != V6_FRAG_NONE) return C_DROP_FRAGMENT;
  if (ip->nh != IPPROTO_ESP_ && ip->nh != IPPROTO_UDP_) return C_DROP_UNSOLICITED_PLAIN;
  rxsa *rx;
  int v = open_group_esp(ex, r, ip->nh, pkt + IPV6_HDR_LEN, ip->tot - IPV6_HDR_LEN, out + IPV6_HDR_LEN, &rx, &spi, &seq,
                         &plen, &nh);
  if (v >= 0) return v;
  if (nh == IPPROTO_IPV6_) {
    /* Carried form: a valid IPv6 packet of exactly the decrypted length between the outer addresses;
     * it goes on with the outer traffic class and hop limit, as the transport form's header does. */
    uint8_t *inner = out + IPV6_HDR_LEN;
    if (plen < IPV6_HDR_LEN || inner[0] >> 4 != 6 || (size_t)rd16(inner + 4) + IPV6_HDR_LEN != plen ||
        memcmp(inner + 8, pkt + 8, 32) != 0)
      return C_DROP_MALFORMED;
    memmove(out, inner, plen);
    ipv6_set_tclass(out, ipv6_tclass(pkt));
    out[7] = pkt[7];
    note->out_len = plen;
  } else if (nh == IPPROTO_IPIP_) {
    return C_DROP_MALFORMED; /* never sent: IPv4 in IPv6 travels in the carried form */
  } else {
    memcpy(out, pkt, IPV6_HDR_LEN);
    out[6] = nh;
    wr16(out + 4, (uint16_t)plen);
    note->out_len = IPV6_HDR_LEN + plen;
  }
  /* What an authenticated member sends is still walked before it goes on: never a malformed chain. */
  ipv6_info in;
  if (ipv6_parse(out, note->out_len, &in) != 0) return C_DROP_MALFORMED;
  clamp_arriving(ex, r, out, NULL, &in);
  return decrypted(ex, rx, spi, seq, len, out, note);
}

int exec_tunnel_decrypt(executor *ex, int family, const uint8_t *src, uint16_t sport, const uint8_t *d, size_t len,
                        double now, uint8_t *out, exec_note *note) {
  size_t plen, tot;
  uint8_t nh;
  ipv4_info ip;
  ipv6_info ip6;
  if (len == 1 && d[0] == 0xff) return C_DROP_TUNNEL_KEEPALIVE;
  if (len < 4) return C_DROP_MALFORMED;
  uint32_t spi = rd32(d);
  if (spi == 0) return C_PUNT_IKE; /* the non-ESP marker: IKE */
  uint32_t seq = len >= 8 ? rd32(d + 4) : 0;
  if (len < ESP_TUNNEL_MIN || (len - ESP_HDR_LEN - ESP_ICV_LEN) % 4 != 0 || seq == 0) return C_DROP_MALFORMED;
  ttrxsa *rx = sa_find(&ex->trx, spi);
  if (!rx) return C_PUNT_UNKNOWN_SPI;
  if (!window_check(&rx->wlock, &rx->w, seq)) {
    stat_add(&rx->replay_drops, 1);
    return C_DROP_REPLAY;
  }
  if (esp_open(&rx->sa.a, d, len, ESP_AAD_SEQ32, out, &plen, &nh) != 0) {
    stat_add(&rx->auth_failures, 1);
    return C_DROP_AUTH_FAILED;
  }
  /* Authenticated: the sequence number is spent whatever the content turns out to be (unless another
   * thread spent it first: then this copy is a replay). */
  datagram_source from = {.family = family, .port = sport};
  memcpy(from.addr, src, family == 6 ? 16 : 4);
  if (!window_accept(&rx->wlock, &rx->w, seq, &rx->last, &from)) {
    stat_add(&rx->replay_drops, 1);
    return C_DROP_REPLAY;
  }
  if (nh == IPPROTO_NONE_) return C_DROP_TUNNEL_DUMMY;
  int inner;
  if (nh == IPPROTO_IPIP_ && parse_ipv4(out, plen, &ip) == 0) {
    inner = 4;
    tot = ip.tot;
  } else if (nh == IPPROTO_IPV6_ && ipv6_parse(out, plen, &ip6) == 0) {
    inner = 6;
    tot = ip6.tot;
  } else {
    return C_DROP_MALFORMED;
  }
  const uint8_t *isrc = out + (inner == 6 ? 8 : 12), *idst = out + (inner == 6 ? 24 : 16);
  if (!in_ranges(rx->ranges + rx->nlocal, rx->nremote, inner, isrc) || !in_ranges(rx->ranges, rx->nlocal, inner, idst)) {
    stat_add(&rx->selector_drops, 1);
    return C_DROP_SELECTOR;
  }
  rule *r = find_rule(ex, SIDE_OUTSIDE, out);
  if (r) {
    if (r->action == ACT_DISCARD) {
      rule_used(r, tot, now);
      return C_DROP_DISCARD;
    }
    if (r->action == ACT_ENCRYPT && r->vpn != rx->sa.vpn) return C_DROP_VPN_MISMATCH;
    if (r->action == ACT_ENCRYPT && r->peer != rx->sa.peer) return C_DROP_PEER_MISMATCH;
    /* As clamp_arriving, for the tunnel back to the peer (of the family this datagram came in). */
    if (r->action == ACT_ENCRYPT && r->mtu >= 0)
      clamp_syn_mss(out, &ip, &ip6, r->mtu - (family == 6 ? TUNNEL6_OVERHEAD_MAX : TUNNEL_OVERHEAD_MAX));
    rule_used(r, tot, now);
  }
  stat_add(&rx->sa.packets, 1);
  stat_add(&rx->sa.bytes, tot);
  stat_time(&rx->sa.last_used, now);
  /* Only what the inner header covers goes on: the rest is TFC padding (RFC 4303 section 2.7). */
  note->out = out;
  note->out_len = tot;
  note->vpn = rx->sa.vpn;
  note->spi = spi;
  note->seq = seq;
  note_peer(ex, rx->sa.peer, note);
  count(ex, C_TUNNEL_DECRYPT_PACKETS, 1);
  count(ex, C_TUNNEL_DECRYPT_BYTES, len);
  return V_FORWARD_TUNNEL_DECRYPT;
}
