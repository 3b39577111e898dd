/* Raw-socket egress of ESP packets in batches (see egress.h for why it is native). */
#define _GNU_SOURCE
#include "egress.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gso.h"
#include "ip.h"
#include "mmsg.h"
#include "sockbuf.h"

#define EGRESS_MAX 64
#define STAGE_BYTES (256 * 1024)

struct egress {
  int fd;
  int n;
  size_t used;
  uint8_t *stage;
  size_t off[EGRESS_MAX], len[EGRESS_MAX];
  struct sockaddr_in to[EGRESS_MAX];
  struct iovec iov[EGRESS_MAX];
  struct mmsghdr msg[EGRESS_MAX];
};

egress *egress_new(void) {
  egress *e = calloc(1, sizeof *e);
  if (!e) return NULL;
  e->stage = malloc(STAGE_BYTES);
  /* IPPROTO_RAW implies IP_HDRINCL: the packet goes out with its own header (the terminal's source
   * address; a header-included socket may send any source). */
  e->fd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, IPPROTO_RAW);
  if (!e->stage || e->fd < 0) {
    if (e->fd >= 0) close(e->fd);
    free(e->stage);
    free(e);
    return NULL;
  }
  /* A full buffer sends the rest through the TUN (slower): as large as the tunnel port's. */
  sockbuf_set(e->fd, SO_SNDBUF);
  return e;
}

void egress_free(egress *e) {
  if (!e) return;
  close(e->fd);
  free(e->stage);
  free(e);
}

static void ttl_adjust(uint8_t *ip, int delta) {
  uint16_t old = rd16(ip + 8);
  ip[8] = (uint8_t)(ip[8] + delta);
  wr16(ip + 10, csum_replace16(rd16(ip + 10), old, rd16(ip + 8)));
}

size_t egress_flush(egress *e, egress_fallback_fn fallback, void *ctx, uint64_t *bytes) {
  size_t sent = 0;
  int i = 0;
  while (i < e->n) {
    int r = sendmmsg(e->fd, e->msg + i, (unsigned)(e->n - i), MSG_DONTWAIT);
    if (r > 0) {
      for (int k = i; k < i + r; k++) *bytes += e->len[k];
      sent += (size_t)r;
      i += r;
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    /* The first remaining packet was refused: let the kernel's forwarding path have it (it
     * fragments, queues or reports as for any forwarded packet). */
    uint8_t *p = e->stage + e->off[i];
    ttl_adjust(p, +1);
    fallback(ctx, p, e->len[i]);
    i++;
  }
  e->n = 0;
  e->used = 0;
  return sent;
}

void egress_add(egress *e, const uint8_t *pkt, size_t len, egress_fallback_fn fallback, void *ctx, uint64_t *sent,
                uint64_t *bytes) {
  size_t need = VNET_HDR_LEN + len;
  need = (need + 15) & ~(size_t)15;
  if (e->n == EGRESS_MAX || e->used + need > STAGE_BYTES) *sent += egress_flush(e, fallback, ctx, bytes);
  if (len < 20 || need > STAGE_BYTES || pkt[8] <= 1) {
    /* Keep order with what is queued, then hand this one to the kernel as it is. */
    *sent += egress_flush(e, fallback, ctx, bytes);
    uint8_t *p = e->stage + VNET_HDR_LEN;
    if (need <= STAGE_BYTES) {
      memcpy(p, pkt, len);
      fallback(ctx, p, len);
    }
    return;
  }
  size_t off = e->used + VNET_HDR_LEN;
  uint8_t *p = e->stage + off;
  memcpy(p, pkt, len);
  ttl_adjust(p, -1);
  int i = e->n++;
  e->used += need;
  e->off[i] = off;
  e->len[i] = len;
  memset(&e->to[i], 0, sizeof e->to[i]);
  e->to[i].sin_family = AF_INET;
  memcpy(&e->to[i].sin_addr, p + 16, 4);
  e->iov[i].iov_base = p;
  e->iov[i].iov_len = len;
  mmsg_single(&e->msg[i], &e->to[i], sizeof e->to[i], &e->iov[i]);
}
