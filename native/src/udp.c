/* The tunnel port's socket (see udp.h for why it is native). */
#define _GNU_SOURCE
#include "udp.h"

#include <errno.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>

#include "ip.h"
#include "sockbuf.h"

#define STAGE_BYTES (256 * 1024)
/* Debian 12's headers have them; older ones may not. */
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif

/* A socket address for addr:port of the family. */
static socklen_t make_addr(udp_addr *a, int family, const uint8_t *addr, uint16_t port) {
  memset(a, 0, sizeof *a);
  if (family == 6) {
    a->v6.sin6_family = AF_INET6;
    a->v6.sin6_port = htons(port);
    memcpy(&a->v6.sin6_addr, addr, 16);
    return sizeof a->v6;
  }
  a->v4.sin_family = AF_INET;
  a->v4.sin_port = htons(port);
  memcpy(&a->v4.sin_addr, addr, 4);
  return sizeof a->v4;
}

udp_sock *udp_open(int family, const uint8_t *addr, uint16_t port, char *err, size_t errlen) {
  udp_sock *s = calloc(1, sizeof *s);
  if (!s) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  s->fd = socket(family == 6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (s->fd < 0) {
    snprintf(err, errlen, "UDP socket: %s", strerror(errno));
    free(s);
    return NULL;
  }
  int ttl = 64, one = 1;
  sockbuf_set(s->fd, SO_RCVBUF);
  sockbuf_set(s->fd, SO_SNDBUF);
  /* The outer TTL / hop limit of docs/executor.md, whatever the host's default. */
  if (family == 6) {
    (void)setsockopt(s->fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    (void)setsockopt(s->fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, &ttl, sizeof ttl);
  } else {
    (void)setsockopt(s->fd, IPPROTO_IP, IP_TTL, &ttl, sizeof ttl);
  }
  udp_addr sa;
  socklen_t sl0 = make_addr(&sa, family, addr, port);
  if (bind(s->fd, &sa.sa, sl0) != 0) {
    char text[64];
    inet_ntop(family == 6 ? AF_INET6 : AF_INET, addr, text, sizeof text);
    snprintf(err, errlen, "bind %s port %u: %s", text, port, strerror(errno));
    close(s->fd);
    free(s);
    return NULL;
  }
  pthread_mutex_init(&s->lock, NULL);
  s->mode = -1;
  /* UDP GSO and GRO (Linux >= 4.18 / 5.0): probed, off where the kernel lacks them. */
  int seg = 0;
  socklen_t sl = sizeof seg;
  s->gso = getsockopt(s->fd, SOL_UDP, UDP_SEGMENT, &seg, &sl) == 0;
  s->gro = setsockopt(s->fd, SOL_UDP, UDP_GRO, &one, sizeof one) == 0;
  s->family = family;
  memcpy(s->addr, addr, family == 6 ? 16 : 4);
  s->port = port;
  return s;
}

void udp_close(udp_sock *s) {
  if (!s) return;
  close(s->fd);
  pthread_mutex_destroy(&s->lock);
  free(s);
}

/* Under s->lock. DF follows the inner packet (docs/executor.md); IKE leaves it to the kernel. */
static void set_mode(udp_sock *s, int mode) {
  if (s->mode == mode) return;
  int r;
  if (s->family == 6) {
    int v = mode == UDP_DF_SET ? IPV6_PMTUDISC_DO : mode == UDP_DF_CLEAR ? IPV6_PMTUDISC_DONT : IPV6_PMTUDISC_WANT;
    r = setsockopt(s->fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER, &v, sizeof v);
  } else {
    int v = mode == UDP_DF_SET ? IP_PMTUDISC_DO : mode == UDP_DF_CLEAR ? IP_PMTUDISC_DONT : IP_PMTUDISC_WANT;
    r = setsockopt(s->fd, IPPROTO_IP, IP_MTU_DISCOVER, &v, sizeof v);
  }
  if (r == 0) s->mode = mode;
}

/* The TOS (IPv4) or traffic class (IPv6) control message. */
static void tos_cmsg(struct cmsghdr *c, int family, int tos) {
  c->cmsg_level = family == 6 ? IPPROTO_IPV6 : IPPROTO_IP;
  c->cmsg_type = family == 6 ? IPV6_TCLASS : IP_TOS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &tos, sizeof tos);
}

static void set_tos(struct msghdr *m, void *ctl, int family, int tos) {
  m->msg_control = ctl;
  m->msg_controllen = CMSG_SPACE(sizeof(int));
  tos_cmsg(CMSG_FIRSTHDR(m), family, tos);
}

int udp_send(udp_sock *s, const uint8_t *dst, uint16_t port, const uint8_t *data, size_t len, int df, int tos) {
  udp_addr to;
  socklen_t tl = make_addr(&to, s->family, dst, port);
  struct iovec iov = {(void *)data, len};
  union {
    struct cmsghdr align;
    uint8_t buf[CMSG_SPACE(sizeof(int))];
  } ctl;
  struct msghdr m = {.msg_name = &to, .msg_namelen = tl, .msg_iov = &iov, .msg_iovlen = 1};
  if (tos) set_tos(&m, &ctl, s->family, tos);
  pthread_mutex_lock(&s->lock);
  set_mode(s, df);
  ssize_t r;
  do r = sendmsg(s->fd, &m, 0);
  while (r < 0 && errno == EINTR);
  if (r < 0 && errno == EAGAIN) {
    /* The send buffer is full: wait a moment for room rather than lose an IKE message. */
    struct pollfd p = {.fd = s->fd, .events = POLLOUT};
    if (poll(&p, 1, 100) > 0) r = sendmsg(s->fd, &m, 0);
  }
  int e = r < 0 ? -errno : 0;
  pthread_mutex_unlock(&s->lock);
  return e;
}

udp_out *udp_out_new(void) {
  udp_out *o = calloc(1, sizeof *o);
  if (!o) return NULL;
  o->stage = malloc(STAGE_BYTES);
  if (!o->stage) {
    free(o);
    return NULL;
  }
  return o;
}

void udp_out_free(udp_out *o) {
  if (!o) return;
  free(o->stage);
  free(o);
}

/* The control data of message i: TOS (if any) and, for a run of several datagrams, UDP_SEGMENT. */
static void set_control(udp_out *o, int i, int gso) {
  int family = o->sock ? o->sock->family : 4;
  struct msghdr *m = &o->msg[i].msg_hdr;
  size_t space = (o->tos[i] ? CMSG_SPACE(sizeof(int)) : 0) + (gso ? CMSG_SPACE(sizeof(uint16_t)) : 0);
  m->msg_control = space ? o->ctl[i].buf : NULL;
  m->msg_controllen = space;
  if (!space) return;
  memset(o->ctl[i].buf, 0, sizeof o->ctl[i].buf);
  struct cmsghdr *c = CMSG_FIRSTHDR(m);
  if (o->tos[i]) {
    tos_cmsg(c, family, o->tos[i]);
    c = CMSG_NXTHDR(m, c);
  }
  if (gso) {
    uint16_t size = (uint16_t)o->seg[i];
    c->cmsg_level = SOL_UDP;
    c->cmsg_type = UDP_SEGMENT;
    c->cmsg_len = CMSG_LEN(sizeof size);
    memcpy(CMSG_DATA(c), &size, sizeof size);
  }
}

/* Message i again, one datagram per send (the kernel refused UDP_SEGMENT for it). */
static void send_one_by_one(udp_out *o, udp_sock *s, int i, uint64_t *sent, uint64_t *bytes, uint64_t *errors) {
  struct msghdr one = o->msg[i].msg_hdr;
  struct iovec *iov = one.msg_iov;
  int n = (int)one.msg_iovlen;
  set_control(o, i, 0);
  one.msg_control = o->msg[i].msg_hdr.msg_control;
  one.msg_controllen = o->msg[i].msg_hdr.msg_controllen;
  one.msg_iovlen = 1;
  for (int k = 0; k < n; k++) {
    one.msg_iov = iov + k;
    ssize_t r;
    do r = sendmsg(s->fd, &one, MSG_DONTWAIT);
    while (r < 0 && errno == EINTR);
    if (r < 0) {
      (*errors)++;
    } else {
      (*sent)++;
      *bytes += iov[k].iov_len;
    }
  }
}

void udp_out_flush(udp_out *o, uint64_t *sent, uint64_t *bytes, uint64_t *errors) {
  udp_sock *s = o->sock;
  if (o->nm == 0 || !s) return;
  pthread_mutex_lock(&s->lock);
  for (int i = 0; i < o->nm; i++) set_control(o, i, o->count[i] > 1);
  int i = 0, waited = 0;
  while (i < o->nm) {
    /* One sendmmsg per run of messages with the same DF treatment. */
    int end = i + 1;
    while (end < o->nm && o->df[end] == o->df[i]) end++;
    set_mode(s, o->df[i]);
    int r = sendmmsg(s->fd, o->msg + i, (unsigned)(end - i), MSG_DONTWAIT);
    if (r > 0) {
      for (int k = i; k < i + r; k++) {
        *bytes += o->bytes[k];
        *sent += (uint64_t)o->count[k];
      }
      i += r;
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && errno == EAGAIN && !waited) {
      struct pollfd p = {.fd = s->fd, .events = POLLOUT};
      waited = 1;
      if (poll(&p, 1, 10) > 0) continue;
    }
    if (r < 0 && o->count[i] > 1 && (errno == EIO || errno == EINVAL || errno == EOPNOTSUPP)) {
      /* The route's device cannot segment UDP (no checksum offload): no more runs on this socket. */
      s->gso = 0;
      send_one_by_one(o, s, i, sent, bytes, errors);
      i++;
      continue;
    }
    /* Refused (EMSGSIZE beyond the route MTU with DF, unreachable, a full queue): count and go on. */
    *errors += (uint64_t)o->count[i];
    i++;
  }
  pthread_mutex_unlock(&s->lock);
  o->n = o->nm = 0;
  o->used = 0;
}

void udp_out_add(udp_out *o, udp_sock *s, const uint8_t *outer, size_t len, uint64_t *sent, uint64_t *bytes,
                 uint64_t *errors) {
  int v6 = s->family == 6;
  size_t hdr = v6 ? 48 : 28, aoff = v6 ? 24 : 16, alen = v6 ? 16 : 4;
  if (len < hdr || (outer[0] >> 4) != (v6 ? 6 : 4)) {
    (*errors)++;
    return;
  }
  size_t plen = len - hdr;
  if (plen > STAGE_BYTES) {
    (*errors)++;
    return;
  }
  if (o->n == UDP_OUT_MAX || o->used + plen > STAGE_BYTES || (o->sock != s && o->nm > 0))
    udp_out_flush(o, sent, bytes, errors);
  o->sock = s;
  /* IPv6 is never fragmented on the way: as DF (the executor punted what does not fit the path). */
  int df = v6 || (outer[6] & 0x40) ? UDP_DF_SET : UDP_DF_CLEAR;
  int tos = v6 ? (outer[0] & 15) << 4 | outer[1] >> 4 : outer[1];
  uint16_t port = rd16(outer + hdr - 6);
  const uint8_t *dst = outer + aoff;
  int i = o->n++;
  uint8_t *p = o->stage + o->used;
  memcpy(p, outer + hdr, plen);
  o->used += plen;
  o->len[i] = plen;
  o->iov[i].iov_base = p;
  o->iov[i].iov_len = plen;
  int m = o->nm - 1;
  /* Appended to the last message: same destination, DF (a segment must fit the path as it is),
   * TOS, and not longer than the run's first datagram, whose length every one but the last has. */
  if (s->gso && m >= 0 && df == UDP_DF_SET && o->df[m] == UDP_DF_SET && !o->closed[m] && o->tos[m] == tos &&
      plen <= o->seg[m] && o->bytes[m] + plen <= UDP_GSO_MAX_BYTES &&
      memcmp(v6 ? (const void *)&o->to[m].v6.sin6_addr : (const void *)&o->to[m].v4.sin_addr, dst, alen) == 0 &&
      ntohs(v6 ? o->to[m].v6.sin6_port : o->to[m].v4.sin_port) == port) {
    o->msg[m].msg_hdr.msg_iovlen++;
    o->count[m]++;
    o->bytes[m] += plen;
    if (plen < o->seg[m]) o->closed[m] = 1;
    return;
  }
  m = o->nm++;
  o->df[m] = df;
  o->tos[m] = tos;
  o->count[m] = 1;
  o->seg[m] = plen;
  o->bytes[m] = plen;
  o->closed[m] = 0;
  socklen_t tl = make_addr(&o->to[m], s->family, dst, port);
  memset(&o->msg[m], 0, sizeof o->msg[m]);
  struct msghdr *h = &o->msg[m].msg_hdr;
  h->msg_name = &o->to[m];
  h->msg_namelen = tl;
  h->msg_iov = &o->iov[i];
  h->msg_iovlen = 1;
}
