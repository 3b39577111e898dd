/* Userspace GRO for TCP over IPv4 and IPv6 (see gro.h for why it is native). The merge rules follow what the
 * kernel's own GRO accepts, so the super-packet segments back into exactly the packets given:
 * same addresses, ports, IP header (but id/length/checksum), same TCP header but sequence number,
 * checksum and PSH; contiguous sequence numbers; equal segment sizes but the last; valid
 * checksums (a corrupt segment is never hidden inside a recomputed one). */
#include "gro.h"

#include <stdlib.h>
#include <string.h>

#include "gso.h"
#include "ip.h"

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_PSH 0x08
#define TCP_ACK 0x10
#define TCP_URG 0x20
#define TCP_CWR 0x80
#define GRO_BUF (VNET_HDR_LEN + 65536 + GRO_SLOT_ROOM)

int gro_init(gro_table *g) {
  memset(g, 0, sizeof *g);
  for (int i = 0; i < GRO_FLOWS; i++) {
    g->f[i].buf = malloc(GRO_BUF);
    if (!g->f[i].buf) {
      gro_free(g);
      return -1;
    }
  }
  return 0;
}

void gro_free(gro_table *g) {
  for (int i = 0; i < GRO_FLOWS; i++) {
    free(g->f[i].buf);
    g->f[i].buf = NULL;
  }
}

static uint64_t tcp_pseudo(const uint8_t *ip, size_t tcplen) {
  if (ip[0] >> 4 == 6) return csum_add(0, ip + 8, 32) + IPPROTO_TCP_ + tcplen;
  return csum_add(0, ip + 12, 8) + IPPROTO_TCP_ + tcplen;
}

/* TCP right behind the IP header: IPv4 (not a fragment, total length = len) or IPv6 without
 * extension headers (payload length = len - 40); ihl = the IP header's length. */
static int tcp_ip(const uint8_t *p, size_t len, size_t *ihl) {
  if (len >= 60 && p[0] >> 4 == 6) {
    *ihl = 40;
    return p[6] == IPPROTO_TCP_ && (size_t)rd16(p + 4) + 40 == len;
  }
  if (len < 40 || p[0] >> 4 != 4 || p[9] != IPPROTO_TCP_) return 0;
  *ihl = (size_t)(p[0] & 15) * 4;
  return *ihl >= 20 && rd16(p + 2) == len && !(rd16(p + 6) & (IP_MF | IP_OFFMASK)) && len >= *ihl + 20;
}

typedef struct {
  size_t ihl, thl, payload;
  uint32_t seq;
  uint8_t flags;
} tcp4;

/* A TCP segment with data that may be coalesced; 0 if not (then it is written as is). */
static int candidate(const uint8_t *p, size_t len, tcp4 *t) {
  if (!tcp_ip(p, len, &t->ihl)) return 0;
  const uint8_t *th = p + t->ihl;
  t->thl = (size_t)(th[12] >> 4) * 4;
  if (t->thl < 20 || t->ihl + t->thl >= len) return 0; /* no data: ACKs go as they are */
  t->flags = th[13];
  if ((t->flags & (TCP_SYN | TCP_FIN | TCP_RST | TCP_URG | TCP_CWR)) || !(t->flags & TCP_ACK)) return 0;
  if (csum_fold(csum_add(tcp_pseudo(p, len - t->ihl), th, len - t->ihl)) != 0xffff) return 0;
  t->payload = len - t->ihl - t->thl;
  t->seq = rd32(th + 4);
  return 1;
}

static int same_flow(const uint8_t *a, size_t aihl, const uint8_t *b, size_t bihl) {
  /* family, addresses and ports */
  if (a[0] >> 4 != b[0] >> 4) return 0;
  if (a[0] >> 4 == 6) return memcmp(a + 8, b + 8, 32) == 0 && memcmp(a + aihl, b + bihl, 4) == 0;
  return memcmp(a + 12, b + 12, 8) == 0 && memcmp(a + aihl, b + bihl, 4) == 0;
}

static int is_tcp(const uint8_t *p, size_t len, size_t *ihl) {
  if (len >= 60 && p[0] >> 4 == 6) {
    *ihl = 40;
    return p[6] == IPPROTO_TCP_;
  }
  if (len < 40 || p[0] >> 4 != 4 || p[9] != IPPROTO_TCP_) return 0;
  *ihl = (size_t)(p[0] & 15) * 4;
  return *ihl >= 20 && *ihl + 20 <= len && !(rd16(p + 6) & IP_OFFMASK);
}

static void write_plain(uint8_t *pkt, size_t len, gro_write_fn write, void *ctx) {
  memset(pkt - VNET_HDR_LEN, 0, VNET_HDR_LEN);
  write(ctx, pkt - VNET_HDR_LEN, len + VNET_HDR_LEN);
}

static void flush_flow(gro_table *g, int i, gro_write_fn write, void *ctx) {
  gro_flow *f = &g->f[i];
  uint8_t *p = f->buf + VNET_HDR_LEN;
  if (f->segs == 1) {
    write_plain(p, f->len, write, ctx);
  } else {
    int v6 = p[0] >> 4 == 6;
    if (v6) {
      wr16(p + 4, (uint16_t)(f->len - 40));
    } else {
      wr16(p + 2, (uint16_t)f->len);
      ipv4_set_checksum(p, f->ihl);
    }
    /* Partial checksum, as the kernel's own GSO packets carry it: the pseudo-header sum for the
     * whole TCP length, not complemented; the kernel completes it per segment. */
    wr16(p + f->ihl + 16, csum_fold(tcp_pseudo(p, f->len - f->ihl)));
    uint8_t *h = f->buf;
    uint16_t hdr_len = (uint16_t)(f->ihl + f->thl), gso = (uint16_t)f->gso_size, start = (uint16_t)f->ihl, off = 16;
    h[0] = VNET_F_NEEDS_CSUM;
    h[1] = v6 ? VNET_GSO_TCPV6 : VNET_GSO_TCPV4;
    memcpy(h + 2, &hdr_len, 2);
    memcpy(h + 4, &gso, 2);
    memcpy(h + 6, &start, 2);
    memcpy(h + 8, &off, 2);
    write(ctx, h, f->len + VNET_HDR_LEN);
  }
  /* Keep f[0..n) dense. */
  g->n--;
  if (i != g->n) {
    gro_flow tmp = g->f[i];
    g->f[i] = g->f[g->n];
    g->f[g->n] = tmp;
  }
}

static int mergeable(const gro_flow *f, const uint8_t *p, size_t len, const tcp4 *t) {
  const uint8_t *q = f->buf + VNET_HDR_LEN;
  const uint8_t *qt = q + f->ihl, *pt = p + t->ihl;
  if (f->closed || t->ihl != f->ihl || t->thl != f->thl) return 0;
  if (t->seq != f->next_seq || t->payload > f->gso_size) return 0;
  /* Only the last segment may be short: the previous one must have been full. */
  if ((f->len - f->ihl - f->thl) % f->gso_size != 0) return 0;
  if (f->len + t->payload > 65535) return 0;
  /* IP header: all but length, id and checksum (options included); IPv6: all but the payload length. */
  if (q[0] >> 4 == 6) {
    if (memcmp(q, p, 4) != 0 || memcmp(q + 6, p + 6, 34) != 0) return 0;
  } else if (memcmp(q, p, 2) != 0 || memcmp(q + 6, p + 6, 4) != 0 || memcmp(q + 12, p + 12, f->ihl - 12) != 0) {
    return 0;
  }
  /* TCP header: ports, ack, data offset, flags but PSH, window, urgent pointer, options. */
  if (memcmp(qt, pt, 4) != 0 || memcmp(qt + 8, pt + 8, 5) != 0 || ((qt[13] ^ pt[13]) & (uint8_t)~TCP_PSH) ||
      memcmp(qt + 14, pt + 14, 2) != 0 || memcmp(qt + 18, pt + 18, f->thl - 18) != 0)
    return 0;
  (void)len;
  return 1;
}

/* Flow i has the segment's payload at its end: it goes on, or is written once complete. */
static void appended(gro_table *g, int i, const tcp4 *t, gro_write_fn write, void *ctx) {
  gro_flow *f = &g->f[i];
  f->len += t->payload;
  f->next_seq += (uint32_t)t->payload;
  f->segs++;
  g->last = f->buf;
  if (t->flags & TCP_PSH) {
    f->buf[VNET_HDR_LEN + f->ihl + 13] |= TCP_PSH;
    f->closed = 1;
  }
  if (t->payload < f->gso_size || f->len + f->gso_size > 65535) flush_flow(g, i, write, ctx);
}

static int flow_of(const gro_table *g, const uint8_t *buf) {
  for (int i = 0; i < g->n; i++)
    if (g->f[i].buf == buf) return i;
  return -1;
}

uint8_t *gro_slot(gro_table *g) {
  int i = g->last ? flow_of(g, g->last) : -1;
  g->saved_len = 0;
  if (i < 0) return NULL;
  gro_flow *f = &g->f[i];
  size_t hl = f->ihl + f->thl;
  /* The slot's headers must not cover the flow's own, and the flow must have room for one more. */
  if (f->closed || f->len < 2 * hl || f->len + f->gso_size > 65535) return NULL;
  uint8_t *slot = f->buf + VNET_HDR_LEN + f->len - hl;
  memcpy(g->saved, slot, hl);
  g->saved_len = hl;
  g->slot_of = f->buf;
  return slot;
}

void gro_unslot(gro_table *g) {
  if (!g->saved_len) return;
  int i = flow_of(g, g->slot_of);
  if (i >= 0) memcpy(g->slot_of + VNET_HDR_LEN + g->f[i].len - g->saved_len, g->saved, g->saved_len);
  g->saved_len = 0;
}

int gro_take(gro_table *g, uint8_t *pkt, size_t len, gro_write_fn write, void *ctx) {
  tcp4 t;
  int i = g->saved_len ? flow_of(g, g->slot_of) : -1;
  if (i < 0) return 0;
  gro_flow *f = &g->f[i];
  if (pkt + g->saved_len != f->buf + VNET_HDR_LEN + f->len || !candidate(pkt, len, &t)) return 0;
  if (!same_flow(f->buf + VNET_HDR_LEN, f->ihl, pkt, t.ihl) || !mergeable(f, pkt, len, &t)) return 0;
  gro_unslot(g); /* the packet's headers give way to the flow's bytes; its payload is in place */
  appended(g, i, &t, write, ctx);
  return 1;
}

static void start_flow(gro_table *g, gro_write_fn write, void *ctx, const uint8_t *p, size_t len, const tcp4 *t) {
  if (g->n == GRO_FLOWS) {
    flush_flow(g, g->victim, write, ctx);
    g->victim = (g->victim + 1) % GRO_FLOWS;
  }
  gro_flow *f = &g->f[g->n++];
  memcpy(f->buf + VNET_HDR_LEN, p, len);
  f->len = len;
  f->ihl = t->ihl;
  f->thl = t->thl;
  f->gso_size = t->payload;
  f->next_seq = t->seq + (uint32_t)t->payload;
  f->segs = 1;
  f->closed = (t->flags & TCP_PSH) != 0;
  g->last = f->buf;
}

void gro_add(gro_table *g, uint8_t *pkt, size_t len, gro_write_fn write, void *ctx) {
  tcp4 t;
  size_t ihl;
  if (!candidate(pkt, len, &t)) {
    /* Anything else of a pending flow (a FIN, a bare ACK) must follow the data before it. */
    if (is_tcp(pkt, len, &ihl))
      for (int i = 0; i < g->n; i++)
        if (same_flow(g->f[i].buf + VNET_HDR_LEN, g->f[i].ihl, pkt, ihl)) {
          flush_flow(g, i, write, ctx);
          break;
        }
    write_plain(pkt, len, write, ctx);
    return;
  }
  for (int i = 0; i < g->n; i++) {
    gro_flow *f = &g->f[i];
    if (!same_flow(f->buf + VNET_HDR_LEN, f->ihl, pkt, t.ihl)) continue;
    if (mergeable(f, pkt, len, &t)) {
      memcpy(f->buf + VNET_HDR_LEN + f->len, pkt + t.ihl + t.thl, t.payload);
      appended(g, i, &t, write, ctx);
      return;
    }
    flush_flow(g, i, write, ctx);
    break;
  }
  start_flow(g, write, ctx, pkt, len, &t);
}

void gro_flush(gro_table *g, gro_write_fn write, void *ctx) {
  while (g->n > 0) flush_flow(g, g->n - 1, write, ctx);
  g->victim = 0;
}
