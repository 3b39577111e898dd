/* UDP GSO super-packets of group ESP in UDP (see uso.h for why it is native). */
#include "uso.h"

#include <stdlib.h>
#include <string.h>

#include "gso.h"
#include "ip.h"

#define USO_BUF (VNET_HDR_LEN + 65535)

int uso_init(uso_batch *b) {
  memset(b, 0, sizeof *b);
  b->buf = malloc(USO_BUF);
  return b->buf ? 0 : -1;
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

void uso_add(uso_batch *b, const uint8_t *pkt, size_t len, uso_write_fn write, uso_single_fn single, void *ctx) {
  size_t nhl = pkt[0] >> 4 == 6 ? 40 : (size_t)(pkt[0] & 15) * 4, hlen = nhl + 8;
  size_t esp = len - hlen;
  uint8_t *ip = b->buf + VNET_HDR_LEN;
  if (b->segs > 0) {
    if (!b->closed && b->hlen == hlen && esp <= b->seg && b->segs < USO_MAX_SEGS && b->len + esp <= 65535 &&
        same_run(ip, pkt, hlen)) {
      memcpy(ip + b->len, pkt + hlen, esp);
      b->len += esp;
      b->segs++;
      if (esp < b->seg) b->closed = 1;
      return;
    }
    uso_flush(b, write, single, ctx);
  }
  memcpy(ip, pkt, len);
  b->len = len;
  b->hlen = hlen;
  b->seg = esp;
  b->segs = 1;
}
