/* The executor, packets from the inside: group ESP in its two forms and tunnel mode
 * (docs/executor.md; see executor.h for why it is native). */
#include "executor_state.h"


/* UDP 4500 -> 4500 in front of an ESP packet of esplen bytes, checksum 0 (RFC 3948 section 3.1). */
static void udp_encap_header(uint8_t *u, size_t esplen) {
  wr16(u, GROUP_UDP_PORT);
  wr16(u + 2, GROUP_UDP_PORT);
  wr16(u + 4, (uint16_t)(GROUP_UDP_HEADER + esplen));
  u[6] = u[7] = 0;
}

/* Takes n consecutive sequence numbers of a sending SA (several threads seal with one SA at once):
 * 0 when the 64-bit space is used up or would wrap (next_seq 0: used up). */
static int take_seqs(txsa *tx, size_t n, uint64_t *first) {
  uint64_t s = __atomic_load_n(&tx->next_seq, __ATOMIC_RELAXED);
  do {
    if (s == 0 || s + (n - 1) < s) return 0;
  } while (!__atomic_compare_exchange_n(&tx->next_seq, &s, s + n, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
  *first = s;
  return 1;
}

/* Options whose copy flag is clear become NOPs (what non-first fragments carry, RFC 791). */
static void nop_uncopied_options(uint8_t *h, size_t ihl) {
  size_t olen;
  for (size_t i = 20; next_option(h, ihl, &i, &olen); i += olen)
    if (!(h[i] & 0x80)) memset(h + i, 1, olen);
}

/* What a group encryption reports: the sealed packet(s) in `note`, and the counters. */
static inline int encrypted(executor *ex, const rule *r, const txsa *tx, uint64_t seq, size_t len, uint8_t *out,
                            size_t out_len, exec_note *note) {
  note->out = out;
  note->out_len = out_len;
  note->vpn = r->vpn;
  note->spi = tx->sa.spi;
  note->seq = seq;
  count(ex, C_ENCRYPT_PACKETS, 1);
  count(ex, C_ENCRYPT_BYTES, len);
  return V_FORWARD_ENCRYPT;
}

/* The carried form (docs/executor.md): the whole inner packet under ESP (next header 4) behind a
 * 20-byte outer header with DF; a packet larger than the path is fragmented first (RFC 791), each
 * fragment in its own ESP packet, written back to back at out. */
static int encrypt_carried(executor *ex, rule *r, txsa *tx, uint8_t *pkt, size_t len, const ipv4_info *ip,
                           uint8_t *out, exec_note *note) {
  size_t ihl = ip->ihl, tot = ip->tot, data = tot - ihl;
  int64_t limit = r->mtu >= 0 && r->mtu < 65535 ? r->mtu : 65535;
  size_t udp = tx->udp, hdr = 20 + udp;
  int64_t overhead = CARRIED_OVERHEAD_MAX - GROUP_UDP_HEADER + (int64_t)udp;
  if (r->mtu >= 0) clamp_syn_mss(pkt, ip, NULL, r->mtu - overhead);
  size_t piece = data, n = 1;
  if (hdr + esp_sealed_len(tot) > (uint64_t)limit) {
    /* A fragment that says DF cannot be split further. */
    int64_t room = limit - overhead - (int64_t)ihl;
    if ((ip->frag & IP_DF) || room < 8) return C_PUNT_TOO_BIG;
    piece = (size_t)(room / 8 * 8);
    n = (data + piece - 1) / piece;
    if (n > EXEC_MAX_FRAGMENTS) return C_PUNT_TOO_BIG;
  }
  uint64_t first;
  if (!take_seqs(tx, n, &first)) return C_DROP_NO_SA; /* the 64-bit space would wrap */
  uint8_t later[60];
  memcpy(later, pkt, ihl);
  nop_uncopied_options(later, ihl);
  uint16_t frag = ip->frag;
  size_t base = (size_t)(frag & IP_OFFMASK) * 8;
  size_t pos = 0;
  for (size_t i = 0, at = 0; i < n; i++, at += piece) {
    size_t dl = data - at < piece ? data - at : piece;
    uint8_t h[60];
    memcpy(h, i == 0 ? pkt : later, ihl);
    if (n > 1) {
      int more = at + dl < data || (frag & IP_MF);
      wr16(h + 2, (uint16_t)(ihl + dl));
      wr16(h + 6, (uint16_t)((frag & IP_DF) | (more ? IP_MF : 0) | ((base + at) / 8)));
      ipv4_set_checksum(h, ihl);
    }
    uint8_t *o = out + pos;
    size_t el = esp_seal(&tx->sa.a, tx->sa.spi, first + i, ESP_AAD_ESN, h, ihl, pkt + ihl + at, dl, 4, o + hdr);
    if (el == 0) return C_DROP_NO_SA;
    memset(o, 0, 20);
    o[0] = 0x45;
    o[1] = pkt[1];
    wr16(o + 2, (uint16_t)(hdr + el));
    o[4] = pkt[4];
    o[5] = pkt[5];
    o[6] = 0x40; /* DF: nothing of ours is fragmented on the way */
    o[8] = pkt[8];
    o[9] = udp ? IPPROTO_UDP_ : IPPROTO_ESP_;
    memcpy(o + 12, pkt + 12, 8);
    ipv4_set_checksum(o, 20);
    if (udp) udp_encap_header(o + 20, el);
    pos += hdr + el;
  }
  note->count = (uint32_t)n;
  if (n > 1) count(ex, C_ENCRYPT_FRAGMENTS, n);
  return encrypted(ex, r, tx, first, len, out, pos, note);
}

int exec_encrypt(executor *ex, rule *r, uint8_t *pkt, size_t len, const ipv4_info *ip, uint8_t *out, exec_note *note) {
  txsa *tx = sa_find(&ex->tx, r->vpn);
  if (!tx || __atomic_load_n(&tx->next_seq, __ATOMIC_RELAXED) == 0)
    return C_DROP_NO_SA; /* next_seq 0: the 64-bit space is used up */
  /* Protocol 4 (IP in IP) from a terminal too: in the transport form its next header would read as
   * the carried form's. */
  if (!(ip->frag & IP_DF) || (ip->frag & (IP_MF | IP_OFFMASK)) || ip->proto == 4)
    return encrypt_carried(ex, r, tx, pkt, len, ip, out, note);
  size_t plen = ip->tot - ip->ihl, udp = tx->udp;
  size_t outlen = ip->ihl + udp + esp_sealed_len(plen);
  /* The MTU test counts the buffer as given (as the reference does) plus the ESP overhead. */
  size_t grown = len + udp + (esp_sealed_len(plen) - plen);
  /* Over 65535 bytes no IPv4 packet can carry it (grown >= outlen). */
  if (grown > 65535 || (r->mtu >= 0 && grown > (uint64_t)r->mtu)) return C_PUNT_TOO_BIG;
  if (r->mtu >= 0) clamp_syn_mss(pkt, ip, NULL, r->mtu - ESP_OVERHEAD_MAX - (int64_t)udp);
  uint64_t seq;
  if (!take_seqs(tx, 1, &seq)) return C_DROP_NO_SA;
  memcpy(out, pkt, ip->ihl);
  size_t el = esp_seal(&tx->sa.a, tx->sa.spi, seq, ESP_AAD_ESN, pkt + ip->ihl, plen, NULL, 0, ip->proto, out + ip->ihl + udp);
  if (el == 0) return C_DROP_NO_SA;
  out[9] = udp ? IPPROTO_UDP_ : IPPROTO_ESP_;
  if (udp) udp_encap_header(out + ip->ihl, el);
  wr16(out + 2, (uint16_t)outlen);
  ipv4_set_checksum(out, ip->ihl);
  return encrypted(ex, r, tx, seq, len, out, outlen, note);
}


/* Group ESP over IPv6 (docs/executor.md). The transport form keeps the fixed header and seals
 * everything after it (extension headers included). The carried form, for inner next header 4 or 41
 * (whose transport form would read as the carried form), puts an outer IPv6 header (traffic class,
 * flow label, hop limit and addresses of the inner packet) around the whole packet, ESP next header
 * 41. IPv6 is never fragmented here: too big is punted, and the core answers Packet Too Big. */
int exec_encrypt6(executor *ex, rule *r, uint8_t *pkt, size_t len, const ipv6_info *ip, uint8_t *out, exec_note *note) {
  txsa *tx = sa_find(&ex->tx, r->vpn);
  if (!tx || __atomic_load_n(&tx->next_seq, __ATOMIC_RELAXED) == 0) return C_DROP_NO_SA;
  int carried = ip->nh == IPPROTO_IPIP_ || ip->nh == IPPROTO_IPV6_;
  size_t udp = tx->udp;
  const uint8_t *body = carried ? pkt : pkt + IPV6_HDR_LEN;
  size_t blen = carried ? ip->tot : ip->tot - IPV6_HDR_LEN, esplen = esp_sealed_len(blen);
  size_t grown = IPV6_HDR_LEN + udp + esplen;
  if (udp + esplen > 65535 || (r->mtu >= 0 && grown > (uint64_t)r->mtu)) return C_PUNT_TOO_BIG;
  if (!carried && r->mtu >= 0) clamp_syn_mss(pkt, NULL, ip, r->mtu - ESP_OVERHEAD_MAX - (int64_t)udp);
  uint64_t seq;
  if (!take_seqs(tx, 1, &seq)) return C_DROP_NO_SA;
  size_t el = esp_seal(&tx->sa.a, tx->sa.spi, seq, ESP_AAD_ESN, body, blen, NULL, 0, carried ? IPPROTO_IPV6_ : ip->nh,
                       out + IPV6_HDR_LEN + udp);
  if (el == 0) return C_DROP_NO_SA;
  memcpy(out, pkt, IPV6_HDR_LEN);
  out[6] = udp ? IPPROTO_UDP_ : IPPROTO_ESP_;
  wr16(out + 4, (uint16_t)(udp + el));
  if (udp) {
    udp_encap_header(out + IPV6_HDR_LEN, el);
    ipv6_udp_checksum(out, out + IPV6_HDR_LEN, udp + el);
  }
  return encrypted(ex, r, tx, seq, len, out, IPV6_HDR_LEN + udp + el, note);
}

/* Outbound tunnel mode: the whole inner packet (IPv4 or IPv6, fragments too) becomes an outer IPv4 or
 * IPv6 header + UDP + ESP (docs/executor.md, "Tunnel mode"). */
int exec_tunnel_encrypt(executor *ex, rule *r, uint8_t *pkt, size_t len, const inner_info *in, uint8_t *out,
                        exec_note *note, double now) {
  ttxsa *t = sa_find(&ex->ttx, (uint32_t)r->tunnel);
  if (!t) return C_DROP_NO_SA;
  if (__atomic_load_n(&t->next_seq, __ATOMIC_RELAXED) > 0xffffffffULL) return C_DROP_TUNNEL_SEQ_EXHAUSTED;
  int v6 = t->sa.family == 6;
  size_t tot = in->tot, hdr = v6 ? TUNNEL6_HDR_LEN : TUNNEL_HDR_LEN;
  size_t esplen = esp_sealed_len(tot);
  size_t outlen = hdr + esplen;
  if (outlen - (v6 ? IPV6_HDR_LEN : 0) > 65535 || (r->mtu >= 0 && outlen > (uint64_t)r->mtu && in->df))
    return C_PUNT_TOO_BIG;
  if (r->mtu >= 0) clamp_inner_mss(pkt, in, r->mtu - (v6 ? TUNNEL6_OVERHEAD_MAX : TUNNEL_OVERHEAD_MAX));
  /* One number, 2^32 - 1 the last (next_seq then stays 2^32: exhausted), several threads at once. */
  uint64_t taken = __atomic_load_n(&t->next_seq, __ATOMIC_RELAXED);
  do {
    if (taken > 0xffffffffULL) return C_DROP_TUNNEL_SEQ_EXHAUSTED;
  } while (!__atomic_compare_exchange_n(&t->next_seq, &taken, taken + 1, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
  uint32_t seq = (uint32_t)taken;
  uint8_t nh = in->family == 6 ? IPPROTO_IPV6_ : IPPROTO_IPIP_;
  if (esp_seal(&t->sa.a, t->sa.spi, seq, ESP_AAD_SEQ32, pkt, tot, NULL, 0, nh, out + hdr) == 0) return C_DROP_NO_SA;
  stat_add(&t->sa.packets, 1);
  stat_add(&t->sa.bytes, tot);
  stat_time(&t->sa.last_used, now);
  /* DSCP copied, ECN not (RFC 6040 compatibility mode: CE is not propagated back). */
  uint8_t tc = in->tclass & 0xfc;
  memset(out, 0, hdr);
  uint8_t *u = out + hdr - 8;
  if (v6) {
    /* Outer IPv6: flow label 0, hop limit 64, UDP. */
    out[0] = 0x60;
    ipv6_set_tclass(out, tc);
    wr16(out + 4, (uint16_t)(8 + esplen));
    out[6] = IPPROTO_UDP_;
    out[7] = 64;
    memcpy(out + 8, t->sa.laddr, 16);
    memcpy(out + 24, t->sa.raddr, 16);
  } else {
    /* Outer IPv4: id from the sequence number, DF copied (always for IPv6 inside), TTL 64, UDP. */
    out[0] = 0x45;
    out[1] = tc;
    wr16(out + 2, (uint16_t)outlen);
    wr16(out + 4, (uint16_t)seq);
    out[6] = in->df ? 0x40 : 0;
    out[8] = 64;
    out[9] = IPPROTO_UDP_;
    memcpy(out + 12, t->sa.laddr, 4);
    memcpy(out + 16, t->sa.raddr, 4);
    ipv4_set_checksum(out, 20);
  }
  wr16(u, t->sa.lport);
  wr16(u + 2, t->sa.rport);
  wr16(u + 4, (uint16_t)(8 + esplen));
  /* UDP checksum: 0 over IPv4 (RFC 3948 section 3.1), computed over IPv6 (RFC 8200 section 8.1). */
  if (v6) ipv6_udp_checksum(out, u, 8 + esplen);
  note->out = out;
  note->out_len = outlen;
  note->vpn = t->sa.vpn;
  note->spi = t->sa.spi;
  note->seq = seq;
  note_peer(ex, t->sa.peer, note);
  count(ex, C_TUNNEL_ENCRYPT_PACKETS, 1);
  count(ex, C_TUNNEL_ENCRYPT_BYTES, len);
  return V_FORWARD_TUNNEL_ENCRYPT;
}
