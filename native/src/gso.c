/* GSO segmentation (see gso.h for why it is native). */
#include "gso.h"

#include <string.h>

#include "ip.h"

void vnet_read(vnet_hdr *h, const uint8_t *p) {
  h->flags = p[0];
  h->gso_type = p[1];
  memcpy(&h->hdr_len, p + 2, 2);
  memcpy(&h->gso_size, p + 4, 2);
  memcpy(&h->csum_start, p + 6, 2);
  memcpy(&h->csum_offset, p + 8, 2);
}

int gso_complete_csum(const vnet_hdr *h, uint8_t *pkt, size_t len) {
  size_t start = h->csum_start, at = (size_t)h->csum_start + h->csum_offset;
  if (start >= len || at + 2 > len) return -1;
  /* The field holds the pseudo-header sum; the sum over the rest completes it. A computed 0 is
   * written as 0xffff, as the kernel's skb_checksum_help does: to UDP 0 means "no checksum" (and
   * over IPv6 the receiver drops it); to TCP both are the same value. */
  uint16_t c = csum_finish(csum_add(0, pkt + start, len - start));
  wr16(pkt + at, c ? c : 0xffff);
  return 0;
}

typedef struct {
  int v6;
  int udp;
  size_t nhl; /* network header length */
  size_t thl; /* TCP or UDP header length */
  size_t payload;
} tcp_layout;

/* UDP segmentation: the IP version tells the family (the vnet header does not). */
static int udp_layout(const uint8_t *pkt, size_t len, tcp_layout *l) {
  l->udp = 1;
  l->thl = 8;
  if (len >= 20 && pkt[0] >> 4 == 4) {
    l->v6 = 0;
    l->nhl = (size_t)(pkt[0] & 15) * 4;
    if (l->nhl < 20 || pkt[9] != IPPROTO_UDP_ || rd16(pkt + 2) != len || (rd16(pkt + 6) & (IP_MF | IP_OFFMASK)))
      return -1;
  } else if (len >= 40 && pkt[0] >> 4 == 6) {
    l->v6 = 1;
    l->nhl = 40;
    if (pkt[6] != IPPROTO_UDP_ || (size_t)rd16(pkt + 4) + 40 != len) return -1;
  } else {
    return -1;
  }
  if (l->nhl + 8 > len) return -1;
  l->payload = len - l->nhl - 8;
  return 0;
}

static int layout(const vnet_hdr *h, const uint8_t *pkt, size_t len, tcp_layout *l) {
  int type = h->gso_type & ~VNET_GSO_ECN;
  if (h->gso_size == 0) return -1;
  l->udp = 0;
  if (type == VNET_GSO_UDP_L4) return udp_layout(pkt, len, l);
  if (type == VNET_GSO_TCPV4) {
    if (len < 20 || pkt[0] >> 4 != 4) return -1;
    l->v6 = 0;
    l->nhl = (size_t)(pkt[0] & 15) * 4;
    if (l->nhl < 20 || pkt[9] != IPPROTO_TCP_) return -1;
    /* tot_len is the super-packet's; a mismatch means it was not what the kernel built. */
    if (rd16(pkt + 2) != len) return -1;
  } else if (type == VNET_GSO_TCPV6) {
    if (len < 40 || pkt[0] >> 4 != 6 || pkt[6] != IPPROTO_TCP_) return -1;
    l->v6 = 1;
    l->nhl = 40;
    if ((size_t)rd16(pkt + 4) + 40 != len) return -1;
  } else {
    return -1;
  }
  if (len < l->nhl + 20) return -1;
  l->thl = (size_t)(pkt[l->nhl + 12] >> 4) * 4;
  if (l->thl < 20 || l->nhl + l->thl > len) return -1;
  l->payload = len - l->nhl - l->thl;
  return 0;
}

uint32_t gso_count(const vnet_hdr *h, const uint8_t *pkt, size_t len, uint64_t *wire_bytes) {
  tcp_layout l;
  if (layout(h, pkt, len, &l) != 0) return 0;
  uint32_t n = l.payload ? (uint32_t)((l.payload + h->gso_size - 1) / h->gso_size) : 1;
  *wire_bytes = (uint64_t)n * (l.nhl + l.thl) + l.payload;
  return n;
}

static uint16_t l4_checksum(const uint8_t *ip, int v6, uint8_t proto, const uint8_t *l4, size_t l4len) {
  uint64_t sum;
  if (v6) {
    sum = csum_add(0, ip + 8, 32);
    sum += (uint64_t)l4len; /* upper-layer length (32 bits) and next header */
    sum += proto;
  } else {
    sum = csum_add(0, ip + 12, 8);
    sum += proto;
    sum += l4len;
  }
  uint16_t c = csum_finish(csum_add(sum, l4, l4len));
  /* UDP sends a computed 0 as all ones (0 means no checksum). */
  return proto == IPPROTO_UDP_ && c == 0 ? 0xffff : c;
}

int gso_segment(const vnet_hdr *h, uint8_t *pkt, size_t len, gso_emit_fn emit, void *ctx) {
  tcp_layout l;
  if (layout(h, pkt, len, &l) != 0) return -1;
  size_t hl = l.nhl + l.thl, mss = h->gso_size;
  uint8_t hdr[60 + 60]; /* IPv4 with options (or IPv6) + TCP with options (or UDP) */
  if (hl > sizeof hdr) return -1;
  memcpy(hdr, pkt, hl);
  const uint8_t *tcp0 = hdr + l.nhl;
  uint32_t seq0 = l.udp ? 0 : rd32(tcp0 + 4);
  uint16_t id0 = l.v6 ? 0 : rd16(hdr + 4);
  uint8_t flags0 = tcp0[13];
  int n = 0;
  size_t off = 0;
  do {
    size_t chunk = l.payload - off < mss ? l.payload - off : mss;
    int last = off + chunk >= l.payload;
    /* In place: this segment's headers go just before its payload, over the previous segment's
     * tail (already processed); the first segment's are where they were. */
    uint8_t *seg = pkt + off;
    memcpy(seg, hdr, hl);
    uint8_t *tcp = seg + l.nhl;
    if (l.v6) {
      wr16(seg + 4, (uint16_t)(l.thl + chunk));
    } else {
      wr16(seg + 2, (uint16_t)(hl + chunk));
      wr16(seg + 4, (uint16_t)(id0 + n));
      ipv4_set_checksum(seg, l.nhl);
    }
    if (l.udp) {
      wr16(tcp + 4, (uint16_t)(8 + chunk));
      tcp[6] = tcp[7] = 0;
      wr16(tcp + 6, l4_checksum(seg, l.v6, IPPROTO_UDP_, tcp, 8 + chunk));
    } else {
      wr32(tcp + 4, seq0 + (uint32_t)off);
      uint8_t f = flags0;
      if (!last) f &= (uint8_t)~0x09; /* FIN and PSH only on the last segment */
      if (n > 0) f &= (uint8_t)~0x80; /* CWR only on the first */
      tcp[13] = f;
      tcp[16] = tcp[17] = 0;
      wr16(tcp + 16, l4_checksum(seg, l.v6, IPPROTO_TCP_, tcp, l.thl + chunk));
    }
    emit(ctx, seg, hl + chunk);
    n++;
    off += chunk;
  } while (off < l.payload);
  return n;
}

int gso_is_esp_in_udp(const vnet_hdr *h, const uint8_t *pkt, size_t len, size_t *hlen) {
  tcp_layout l;
  if ((h->gso_type & ~VNET_GSO_ECN) != VNET_GSO_UDP_L4 || h->gso_size == 0) return 0;
  if (udp_layout(pkt, len, &l) != 0 || rd16(pkt + l.nhl + 2) != 4500) return 0;
  *hlen = l.nhl + 8;
  return 1;
}

int gso_split_esp_in_udp(const vnet_hdr *h, uint8_t *pkt, size_t len, size_t hlen, gso_emit_fn emit, void *ctx) {
  size_t mss = h->gso_size, nhl = hlen - 8;
  if (mss == 0 || len <= hlen) return -1;
  uint8_t hdr[60 + 8];
  memcpy(hdr, pkt, hlen);
  int v6 = hdr[0] >> 4 == 6;
  uint16_t id0 = rd16(hdr + 4);
  int n = 0;
  for (size_t off = hlen; off < len; off += mss, n++) {
    size_t chunk = len - off < mss ? len - off : mss;
    uint8_t *seg = pkt + off - hlen;
    memcpy(seg, hdr, hlen);
    if (v6) {
      wr16(seg + 4, (uint16_t)(8 + chunk));
    } else {
      wr16(seg + 2, (uint16_t)(hlen + chunk));
      wr16(seg + 4, (uint16_t)(id0 + n));
      ipv4_set_checksum(seg, nhl);
    }
    wr16(seg + nhl + 4, (uint16_t)(8 + chunk));
    seg[nhl + 6] = seg[nhl + 7] = 0;
    emit(ctx, seg, hlen + chunk);
  }
  return n;
}
