/* UDP GSO super-packets of group ESP in UDP (see uso.h for why it is native). */
#include "uso.h"

#include <stdlib.h>
#include <string.h>

#include "gso.h"
#include "ip.h"

int uso_init(uso_batch *b, size_t slot_room) {
  memset(b, 0, sizeof *b);
  b->buf = malloc(VNET_HDR_LEN + 65535 + slot_room);
  return b->buf ? 0 : -1;
}

int uso_init_forwarded(uso_batch *b, size_t slot_room) {
  if (uso_init(b, slot_room) != 0) return -1;
  b->forwarded = 1;
  return 0;
}

void uso_free(uso_batch *b) {
  free(b->buf);
  b->buf = NULL;
}

/* Same run: IP header but length, id and checksum (IPv4: version, TOS, flags, TTL, protocol,
 * addresses, options; IPv6: version, traffic class, flow label, next header, hop limit, addresses),
 * and the UDP ports. */
static int same_run(const uint8_t *a, const uint8_t *p, size_t hlen) {
  size_t nhl = hlen - 8;
  if (a[0] >> 4 == 6)
    return p[0] >> 4 == 6 && memcmp(a, p, 4) == 0 && memcmp(a + 6, p + 6, 34) == 0 && memcmp(a + nhl, p + nhl, 4) == 0;
  return a[0] == p[0] && a[1] == p[1] && memcmp(a + 6, p + 6, 4) == 0 && memcmp(a + 12, p + 12, nhl - 12) == 0 &&
         memcmp(a + nhl, p + nhl, 4) == 0;
}

void uso_flush(uso_batch *b, uso_write_fn write, uso_single_fn single, void *ctx) {
  if (b->segs == 0) return;
  uint8_t *ip = b->buf + VNET_HDR_LEN;
  size_t nhl = b->hlen - 8;
  if (b->segs == 1) {
    single(ctx, ip, b->len);
  } else {
    uint8_t *v = b->buf;
    uint16_t hdr_len = (uint16_t)b->hlen, gso_size = (uint16_t)b->seg, start = (uint16_t)nhl, off = 6;
    v[0] = VNET_F_NEEDS_CSUM;
    v[1] = VNET_GSO_UDP_L4;
    memcpy(v + 2, &hdr_len, 2); /* host-endian: the legacy virtio_net_hdr layout */
    memcpy(v + 4, &gso_size, 2);
    memcpy(v + 6, &start, 2);
    memcpy(v + 8, &off, 2);
    uint8_t *u = ip + nhl;
    size_t ulen = b->len - nhl;
    uint64_t sum;
    if (ip[0] >> 4 == 6) {
      wr16(ip + 4, (uint16_t)ulen);
      sum = csum_add(0, ip + 8, 32) + IPPROTO_UDP_ + ulen;
    } else {
      wr16(ip + 2, (uint16_t)b->len);
      ipv4_set_checksum(ip, nhl);
      sum = csum_add(0, ip + 12, 8) + IPPROTO_UDP_ + ulen;
    }
    wr16(u + 4, (uint16_t)ulen);
    /* NEEDS_CSUM: the field holds the pseudo-header sum; the kernel adjusts it per segment. */
    wr16(u + 6, csum_fold(sum));
    write(ctx, b->buf, VNET_HDR_LEN + b->len);
  }
  b->segs = 0;
  b->len = 0;
  b->closed = 0;
}

uint8_t *uso_slot(uso_batch *b, uso_write_fn write, uso_single_fn single, void *ctx) {
  uint8_t *ip = b->buf + VNET_HDR_LEN;
  if (b->segs > 0 && (b->closed || b->segs == USO_MAX_SEGS)) uso_flush(b, write, single, ctx);
  if (b->segs == 0) return ip;
  /* Segments shorter than the headers: the slot's headers would cover the run's own; write
   * behind the run (uso_take then moves the ESP once). */
  if (b->len < 2 * b->hlen) return ip + b->len + sizeof b->saved;
  uint8_t *slot = ip + b->len - b->hlen;
  memcpy(b->saved, slot, b->hlen);
  b->saved_len = b->hlen;
  return slot;
}

void uso_unslot(uso_batch *b) {
  if (b->saved_len) memcpy(b->buf + VNET_HDR_LEN + b->len - b->saved_len, b->saved, b->saved_len);
  b->saved_len = 0;
}

/* The IP + UDP header length of a whole UDP datagram (not a fragment, UDP length = what follows
 * the IP header) with a payload, over IPv4 or IPv6 (UDP right after the fixed header); 0 for
 * anything else. */
static size_t udp_hlen(const uint8_t *pkt, size_t len) {
  size_t nhl;
  if (len >= 40 + 8 && pkt[0] >> 4 == 6 && pkt[6] == IPPROTO_UDP_ && (size_t)rd16(pkt + 4) + 40 == len) {
    nhl = 40;
  } else if (len >= 20 + 8 && pkt[0] >> 4 == 4 && pkt[9] == IPPROTO_UDP_ && rd16(pkt + 2) == len &&
             !(rd16(pkt + 6) & (IP_MF | IP_OFFMASK))) {
    nhl = (size_t)(pkt[0] & 15) * 4;
  } else {
    return 0;
  }
  if (nhl < 20 || len <= nhl + 8 || rd16(pkt + nhl + 4) != len - nhl) return 0;
  return nhl + 8;
}

/* A forwarded datagram the kernel's segmentation gives back exactly (uso_init_forwarded). */
static int reproducible(const uso_batch *b, const uint8_t *pkt, size_t len, size_t hlen) {
  size_t nhl = hlen - 8;
  const uint8_t *u = pkt + nhl;
  uint64_t sum;
  /* No checksum (IPv4), or an invalid one (IPv6 forbids 0): the kernel would write one (0xffff for a
   * computed 0), so the terminal would no longer get the datagram as it was sent. */
  if (rd16(u + 6) == 0) return 0;
  if (pkt[0] >> 4 == 6) {
    sum = csum_add(0, pkt + 8, 32);
  } else {
    if (b->segs > 0 && rd16(pkt + 4) != (uint16_t)(rd16(b->buf + VNET_HDR_LEN + 4) + b->segs)) return 0;
    sum = csum_add(0, pkt + 12, 8);
  }
  sum += IPPROTO_UDP_ + (len - nhl);
  return csum_fold(csum_add(sum, u, len - nhl)) == 0xffff;
}

int uso_take(uso_batch *b, const uint8_t *pkt, size_t len) {
  uint8_t *ip = b->buf + VNET_HDR_LEN;
  size_t hlen = udp_hlen(pkt, len);
  if (hlen == 0) return 0;
  size_t esp = len - hlen;
  if (b->forwarded && !reproducible(b, pkt, len, hlen)) return 0;
  if (b->segs == 0) {
    if (pkt != ip) memmove(ip, pkt, len);
    b->len = len;
    b->hlen = hlen;
    b->seg = esp;
    b->segs = 1;
    b->closed = 0;
    return 1;
  }
  if (b->hlen != hlen || esp > b->seg || b->len + esp > 65535 || !same_run(ip, pkt, hlen)) return 0;
  uint8_t *at = ip + b->len;
  if (pkt + hlen == at)
    uso_unslot(b); /* at the slot: the packet's headers give way to the run's bytes, its ESP is in place */
  else
    memmove(at, pkt + hlen, esp);
  b->len += esp;
  b->segs++;
  if (esp < b->seg) b->closed = 1;
  return 1;
}

void uso_add(uso_batch *b, const uint8_t *pkt, size_t len, uso_write_fn write, uso_single_fn single, void *ctx) {
  if (b->segs > 0 && (b->closed || b->segs == USO_MAX_SEGS)) uso_flush(b, write, single, ctx);
  if (uso_take(b, pkt, len)) return;
  uso_flush(b, write, single, ctx);
  if (uso_take(b, pkt, len)) return;
  uint8_t *ip = b->buf + VNET_HDR_LEN;
  memcpy(ip, pkt, len);
  single(ctx, ip, len);
}
