/* The datapath: TUN reader threads and the tunnel port (see datapath.h for why it is native). */
#define _GNU_SOURCE
#include "datapath.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "egress.h"
#include "esp.h"
#include "gro.h"
#include "gso.h"
#include "ip.h"
#include "ipv6.h"
#include "mmsg.h"
#include "udp.h"
#include "uso.h"

/* Debian 12's kernel headers (6.1) predate them; the running kernel (>= 6.2) knows them. */
#ifndef TUN_F_USO4
#define TUN_F_USO4 0x20
#endif
#ifndef TUN_F_USO6
#define TUN_F_USO6 0x40
#endif

#ifndef UDP_GRO
#define UDP_GRO 104
#endif
#ifndef SOL_UDP
#define SOL_UDP 17
#endif

#define READ_BURST 64
/* The reader's hold (see burst()): 25 us measured as good as 50-200 us for 64-byte streams here
 * (hostA -> hostB +20-25 % packets per second), with the least latency added. */
#define HOLD_NS 25000
#define FRAME_MAX (VNET_HDR_LEN + 65536)
#define OUT_MAX (VNET_HDR_LEN + 65536 + EXEC_OUT_EXTRA)
#define UDP_RX_BURST 64
#define UDP_RX_BUF 65536

typedef struct dp_queue {
  datapath *dp;
  int fd;
  int side;
  int started;
  pthread_t thread;
  uint8_t *rbuf; /* vnet header + frame as read (segmented in place) */
  uint8_t *obuf; /* vnet header room + encrypted/decrypted output (but ESP in UDP: see process_packet) */
  punt_batch *cur;
  double now;
  gro_table gro;
  int gro_ok;
  uso_batch uso; /* group ESP in UDP, coalesced into UDP GSO super-packets */
  int uso_ok;
  uso_batch uro; /* forwarded (decrypted) UDP datagrams, coalesced the same way */
  int uro_ok;
  egress *eg;
  uint64_t eg_sent, eg_bytes;
  udp_out *uo; /* tunnel ESP for the tunnel port, sent at the end of each burst */
  uint64_t u_sent, u_bytes, u_errors;
  int udp;    /* the tunnel port's reader: fd is the TUN it writes to (not its own) */
  uint64_t hold_until; /* CLOCK_MONOTONIC ns until which runs stay open and the queue unpolled (the hold); 0: none */
  struct dp_queue *pair; /* the other device's queue this one's thread also reads */
  int follower;          /* read by its pair's thread */
  char name[IFNAMSIZ];   /* the TUN device's (empty for the tunnel port's reader) */
} dp_queue;

struct datapath {
  executor *ex;
  int stopfd;
  dp_queue q[2 * DP_MAX_QUEUES];
  int nq;
  int wfd[2];
  pthread_mutex_t pool_lock;
  punt_batch *batches;
  size_t nbatches;
  punt_submit_fn submit;
  void *submit_ctx;
  int options;
  uint64_t hold_ns; /* how long runs of small packets stay open after the queue ran dry; 0: never */
  int uso; /* every TUN took TUN_F_USO4/6: UDP GSO super-packets are read and written whole */
  int rawfd[2]; /* for dp_send_local (IPv4, IPv6), opened on first use */
  udp_sock *us[2]; /* the tunnel port: [0] IPv4, [1] IPv6 (either or both) */
  dp_queue uq;     /* the tunnel port's reader (one thread for both sockets) */
  uint8_t *urbuf;
  struct mmsghdr umsg[UDP_RX_BURST];
  struct iovec uiov[UDP_RX_BURST];
  udp_addr ufrom[UDP_RX_BURST];
  union {
    struct cmsghdr align;
    uint8_t buf[CMSG_SPACE(sizeof(int))];
  } uctl[UDP_RX_BURST]; /* UDP_GRO: the segment size of a coalesced read */
  _Atomic uint64_t stats[DP_STAT_COUNT];
  _Atomic int failed; /* 1: a reader thread stopped on a device error; 2: failure says why */
  char failure[160];
};

static void stat_add(datapath *dp, int i, uint64_t v) {
  atomic_fetch_add_explicit(&dp->stats[i], v, memory_order_relaxed);
}

static double now_ms(void) {
  /* Same clock as Date.now(): the core reads last-used times against it. */
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec * 1000.0 + (double)(ts.tv_nsec / 1000000);
}

datapath *dp_new(executor *ex, punt_batch *batches, size_t nbatches, punt_submit_fn submit, void *ctx, int options) {
  datapath *dp = calloc(1, sizeof *dp);
  if (!dp) return NULL;
  dp->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (dp->stopfd < 0 || pthread_mutex_init(&dp->pool_lock, NULL) != 0) {
    if (dp->stopfd >= 0) close(dp->stopfd);
    free(dp);
    return NULL;
  }
  dp->wfd[0] = dp->wfd[1] = -1;
  dp->rawfd[0] = dp->rawfd[1] = -1;
  dp->uso = 1;
  dp->ex = ex;
  exec_retain(ex);
  dp->batches = batches;
  dp->nbatches = nbatches;
  dp->submit = submit;
  dp->submit_ctx = ctx;
  dp->options = options;
  dp->hold_ns = (options & DP_OPT_HOLD) ? HOLD_NS : 0;
  return dp;
}

static int tun_open(const char *name, int multiqueue, int *uso, char *err, size_t errlen) {
  struct ifreq ifr;
  int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    snprintf(err, errlen, "open /dev/net/tun: %s", strerror(errno));
    return -1;
  }
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI | IFF_VNET_HDR | (multiqueue ? IFF_MULTI_QUEUE : 0);
  snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    snprintf(err, errlen, "TUNSETIFF %s: %s", name, strerror(errno));
    close(fd);
    return -1;
  }
  int hdr = VNET_HDR_LEN;
  unsigned offload = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN;
  /* UDP segmentation offload (kernel >= 6.2): without it (EINVAL) the kernel segments UDP super-
   * packets before the read and the datapath writes ESP in UDP one packet at a time. */
  if (ioctl(fd, TUNSETVNETHDRSZ, &hdr) == 0 && ioctl(fd, TUNSETOFFLOAD, offload | TUN_F_USO4 | TUN_F_USO6) == 0) return fd;
  *uso = 0;
  if (ioctl(fd, TUNSETVNETHDRSZ, &hdr) < 0 || ioctl(fd, TUNSETOFFLOAD, offload) < 0) {
    snprintf(err, errlen, "TUN offloads on %s: %s", name, strerror(errno));
    close(fd);
    return -1;
  }
  return fd;
}

int dp_add_device(datapath *dp, const char *name, int side, int queues, char *err, size_t errlen) {
  if (side != SIDE_INSIDE && side != SIDE_OUTSIDE) {
    snprintf(err, errlen, "bad side");
    return -1;
  }
  if (queues < 1 || queues > DP_MAX_QUEUES || dp->nq + queues > 2 * DP_MAX_QUEUES) {
    snprintf(err, errlen, "queues must be 1..%d", DP_MAX_QUEUES);
    return -1;
  }
  if (strlen(name) == 0 || strlen(name) >= IFNAMSIZ) {
    snprintf(err, errlen, "bad device name");
    return -1;
  }
  int first = dp->nq;
  for (int i = 0; i < queues; i++) {
    dp_queue *q = &dp->q[dp->nq];
    memset(q, 0, sizeof *q);
    q->fd = -1;
    q->rbuf = malloc(FRAME_MAX);
    q->obuf = malloc(OUT_MAX);
    if (!q->rbuf || !q->obuf) {
      snprintf(err, errlen, "out of memory");
    } else {
      q->fd = tun_open(name, queues > 1, &dp->uso, err, errlen);
    }
    if (q->fd < 0) {
      free(q->rbuf);
      free(q->obuf);
      /* Close the queues of this device opened so far. */
      while (dp->nq > first) {
        dp_queue *o = &dp->q[--dp->nq];
        if (o->gro_ok) gro_free(&o->gro);
        if (o->uso_ok) uso_free(&o->uso);
        egress_free(o->eg);
        close(o->fd);
        free(o->rbuf);
        free(o->obuf);
      }
      return -1;
    }
    q->dp = dp;
    q->side = side;
    snprintf(q->name, sizeof q->name, "%s", name);
    /* Without GRO buffers the queue still works, writing one packet at a time. */
    q->gro_ok = (dp->options & DP_OPT_GRO) && gro_init(&q->gro) == 0;
    q->uso_ok = 0; /* decided at dp_start, when every device is open */
    /* Without a raw socket (no CAP_NET_RAW) ESP goes through the TUN like everything else. */
    q->eg = (dp->options & DP_OPT_RAW_EGRESS) ? egress_new() : NULL;
    dp->nq++;
  }
  if (dp->wfd[side] < 0) dp->wfd[side] = dp->q[first].fd;
  return 0;
}

/* ---- punts ---- */

static punt_batch *acquire_batch(datapath *dp) {
  punt_batch *b = NULL;
  pthread_mutex_lock(&dp->pool_lock);
  for (size_t i = 0; i < dp->nbatches; i++)
    if (!dp->batches[i].in_use) {
      b = &dp->batches[i];
      b->in_use = 1;
      b->count = b->used = 0;
      break;
    }
  pthread_mutex_unlock(&dp->pool_lock);
  return b;
}

void dp_release_batch(datapath *dp, punt_batch *b) {
  pthread_mutex_lock(&dp->pool_lock);
  b->in_use = 0;
  pthread_mutex_unlock(&dp->pool_lock);
}

static void flush_punts(dp_queue *q) {
  punt_batch *b = q->cur;
  if (!b) return;
  q->cur = NULL;
  if (b->count == 0) {
    dp_release_batch(q->dp, b);
    return;
  }
  size_t n = b->count;
  if (q->dp->submit(q->dp->submit_ctx, b) != 0) {
    stat_add(q->dp, DP_PUNTS_DROPPED, n);
    dp_release_batch(q->dp, b);
  } else {
    stat_add(q->dp, DP_PUNTS, n);
    stat_add(q->dp, DP_PUNT_BATCHES, 1);
  }
}

/* Room for one punted entry of `need` bytes in the current batch (a new batch when it is full), with
 * its meta words written; NULL (counted) when JavaScript holds every batch, it is slower than the
 * wire, or the entry is larger than a batch. */
static uint8_t *punt_entry(dp_queue *q, size_t need, int side, int code) {
  punt_batch *b = q->cur;
  if (b && (b->count == b->max || b->cap - b->used < need)) {
    flush_punts(q);
    b = NULL;
  }
  if (!b) b = q->cur = acquire_batch(q->dp);
  if (!b || b->cap - b->used < need) {
    stat_add(q->dp, DP_PUNTS_DROPPED, 1);
    return NULL;
  }
  uint8_t *p = b->buf + b->used;
  b->meta[3 * b->count] = (uint32_t)b->used;
  b->meta[3 * b->count + 1] = (uint32_t)need;
  b->meta[3 * b->count + 2] = (uint32_t)(side << 8 | code);
  b->used += need;
  b->count++;
  return p;
}

static void punt(dp_queue *q, const uint8_t *pkt, size_t len, int code) {
  uint8_t *p = punt_entry(q, len, q->side, code);
  if (p) memcpy(p, pkt, len);
}

/* The address (4 or 16 bytes), port and family of a datagram's source. */
static const uint8_t *from_addr(const udp_addr *from, int *family, uint16_t *port) {
  if (from->sa.sa_family == AF_INET6) {
    *family = 6;
    *port = ntohs(from->v6.sin6_port);
    return (const uint8_t *)&from->v6.sin6_addr;
  }
  *family = 4;
  *port = ntohs(from->v4.sin_port);
  return (const uint8_t *)&from->v4.sin_addr;
}

static void punt_udp(dp_queue *q, const udp_addr *from, const uint8_t *d, size_t len, int code) {
  uint8_t *p = punt_entry(q, DP_UDP_PREFIX + len, DP_SIDE_UDP, code);
  if (!p) return;
  int family;
  uint16_t port;
  const uint8_t *a = from_addr(from, &family, &port);
  memset(p, 0, DP_UDP_PREFIX);
  memcpy(p, a, family == 6 ? 16 : 4);
  p[16] = (uint8_t)family;
  wr16(p + 18, port);
  wr16(p + 20, q->dp->us[family == 6]->port);
  memcpy(p + DP_UDP_PREFIX, d, len);
}

/* ---- per frame ---- */

/* One frame (vnet header + packet) in one or two parts: a TUN takes one packet per call. */
static void write_iov(dp_queue *q, struct iovec *iov, int n, size_t packet_len) {
  ssize_t w;
  do w = writev(q->fd, iov, n);
  while (w < 0 && errno == EINTR);
  if (w < 0) {
    stat_add(q->dp, DP_TX_ERRORS, 1);
  } else {
    stat_add(q->dp, DP_TX_PACKETS, 1);
    stat_add(q->dp, DP_TX_BYTES, packet_len);
  }
}

static void write_frame(dp_queue *q, const uint8_t *frame, size_t len) {
  struct iovec iov = {(void *)frame, len};
  write_iov(q, &iov, 1, len - VNET_HDR_LEN);
}

static void gro_write(void *ctx, uint8_t *frame, size_t len) { write_frame(ctx, frame, len); }

/* One packet (VNET_HDR_LEN writable bytes before it) to the TUN as it is, no offloads. */
static void write_plain(void *ctx, uint8_t *pkt, size_t len) {
  memset(pkt - VNET_HDR_LEN, 0, VNET_HDR_LEN);
  write_frame(ctx, pkt - VNET_HDR_LEN, len + VNET_HDR_LEN);
}

static void uro_write(void *ctx, uint8_t *frame, size_t len) {
  stat_add(((dp_queue *)ctx)->dp, DP_TX_GSO, 1);
  write_frame(ctx, frame, len);
}

/* A forwarded packet (VNET_HDR_LEN writable bytes before it) to the TUN: TCP coalesced by GRO, UDP
 * into UDP GSO super-packets. */
static void forward_packet(dp_queue *q, uint8_t *pkt, size_t len) {
  if (q->uro_ok && len >= 20 && ip_first_proto(pkt) == IPPROTO_UDP_) {
    uso_add(&q->uro, pkt, len, uro_write, write_plain, q);
  } else if (q->gro_ok) {
    gro_add(&q->gro, pkt, len, gro_write, q);
  } else {
    write_plain(q, pkt, len);
  }
}

static void egress_account(dp_queue *q) {
  if (q->eg_sent) {
    stat_add(q->dp, DP_TX_PACKETS, q->eg_sent);
    stat_add(q->dp, DP_TX_RAW, q->eg_sent);
    stat_add(q->dp, DP_TX_BYTES, q->eg_bytes);
    q->eg_sent = q->eg_bytes = 0;
  }
}

static void udp_account(dp_queue *q) {
  if (q->u_sent) stat_add(q->dp, DP_UDP_TX, q->u_sent);
  if (q->u_bytes) stat_add(q->dp, DP_UDP_TX_BYTES, q->u_bytes);
  if (q->u_errors) stat_add(q->dp, DP_UDP_TX_ERRORS, q->u_errors);
  q->u_sent = q->u_bytes = q->u_errors = 0;
}

static void egress_or_tun(dp_queue *q, uint8_t *pkt, size_t len) {
  if (q->eg && pkt[0] >> 4 == 4) {
    egress_add(q->eg, pkt, len, write_plain, q, &q->eg_sent, &q->eg_bytes);
  } else {
    write_plain(q, pkt, len);
  }
}

static void uso_single(void *ctx, uint8_t *pkt, size_t len) { egress_or_tun(ctx, pkt, len); }

/* A UDP GSO super-packet of ESP: whatever the raw socket holds goes first (order within a flow). */
static void uso_write(void *ctx, uint8_t *frame, size_t len) {
  dp_queue *q = ctx;
  if (q->eg) q->eg_sent += egress_flush(q->eg, write_plain, q, &q->eg_bytes);
  stat_add(q->dp, DP_TX_GSO, 1);
  write_frame(q, frame, len);
}

/* End of a burst: everything held back goes out, or with hold_runs everything but the runs of
 * UDP GSO super-packets and tunnel datagrams being built (see the reader's hold). */
static void flush_some(dp_queue *q, int hold_runs) {
  if (!hold_runs) {
    if (q->uso_ok) uso_flush(&q->uso, uso_write, uso_single, q);
    if (q->uro_ok) uso_flush(&q->uro, uro_write, write_plain, q);
  }
  if (q->gro_ok) gro_flush(&q->gro, gro_write, q);
  if (q->eg) q->eg_sent += egress_flush(q->eg, write_plain, q, &q->eg_bytes);
  egress_account(q);
  if (q->uo && !hold_runs) {
    udp_out_flush(q->uo, &q->u_sent, &q->u_bytes, &q->u_errors);
    udp_account(q);
  }
}

static void flush_out(dp_queue *q) { flush_some(q, 0); }

/* Whether a run is being built that a hold could make longer. */
static int runs_open(const dp_queue *q) {
  return (q->uso_ok && q->uso.segs > 0) || (q->uro_ok && q->uro.segs > 0) || (q->uo && q->uo->n > 0);
}

/* One packet to the TUN, with its own (zero) vnet header: for packets back to back in a buffer. */
static void write_packet(dp_queue *q, const uint8_t *pkt, size_t len) {
  uint8_t hdr[VNET_HDR_LEN] = {0};
  struct iovec iov[2] = {{hdr, VNET_HDR_LEN}, {(void *)pkt, len}};
  write_iov(q, iov, 2, len);
}

/* What the executor decided for one packet, carried out. */
static void forward(dp_queue *q, uint8_t *pkt, size_t len, int v, exec_note *n) {
  exec_note note = *n;
  if (v == V_FORWARD_ENCRYPT && (note.count > 1 || q->uso_ok)) {
    /* ESP in UDP is coalesced into UDP GSO super-packets (equal sizes: the segments of one TCP
     * super-packet, or the fragments of one packet without DF); raw ESP goes out one by one. */
    uint8_t *out = (uint8_t *)note.out, *end = out + note.out_len;
    for (uint32_t i = 0; i < note.count && end - out >= 20; i++) {
      int v6 = out[0] >> 4 == 6;
      size_t n = v6 ? IPV6_HDR_LEN + (size_t)rd16(out + 4) : rd16(out + 2);
      if (q->uso_ok && ip_first_proto(out) == IPPROTO_UDP_) {
        uso_add(&q->uso, out, n, uso_write, uso_single, q);
      } else {
        if (q->uso_ok) uso_flush(&q->uso, uso_write, uso_single, q);
        if (q->eg && !v6)
          egress_add(q->eg, out, n, write_plain, q, &q->eg_sent, &q->eg_bytes);
        else
          write_packet(q, out, n);
      }
      out += n;
    }
  } else if (v >= V_FORWARD_PLAIN) {
    uint8_t *out = (uint8_t *)note.out;
    /* The raw socket is IPv4: raw ESP over IPv6 goes through the TUN. */
    if (v == V_FORWARD_ENCRYPT && q->eg && out[0] >> 4 == 4) {
      egress_add(q->eg, out, note.out_len, write_plain, q, &q->eg_sent, &q->eg_bytes);
    } else if (v == V_FORWARD_TUNNEL_ENCRYPT) {
      /* From this gateway's own address: only the tunnel port can send it (a TUN write of a
       * packet with a local source address is a martian to the kernel). */
      udp_sock *s = q->dp->us[out[0] >> 4 == 6];
      if (q->uo && s)
        udp_out_add(q->uo, s, out, note.out_len, &q->u_sent, &q->u_bytes, &q->u_errors);
      else
        stat_add(q->dp, DP_UDP_TX_ERRORS, 1);
    } else {
      forward_packet(q, out, note.out_len);
    }
  } else if (v >= V_FIRST_PUNT && v <= V_LAST_PUNT) {
    punt(q, pkt, len, v);
  }
}

_Static_assert(GRO_SLOT_ROOM >= 65536 + EXEC_OUT_EXTRA, "a GRO slot holds any executor output");

/* pkt has VNET_HDR_LEN writable bytes before it. The executor writes its output where it is most
 * likely to go, so that the common case is never copied (one pass per segment: AES-GCM between the
 * frame read and the frame to write): from the inside, into the UDP GSO super-packet being built
 * (uso.h, the slot); from the outside, into the TCP flow GRO is building (gro.h). Anything else is
 * moved out of that buffer first. */
static void process_packet(dp_queue *q, uint8_t *pkt, size_t len) {
  exec_note note;
  int inside = q->side == SIDE_INSIDE;
  uint8_t *slot = NULL;
  if (inside && q->uso_ok)
    slot = uso_slot(&q->uso, uso_write, uso_single, q);
  else if (!inside && q->gro_ok)
    slot = gro_slot(&q->gro);
  int v = exec_process(q->dp->ex, q->side, pkt, len, q->now, slot ? slot : q->obuf + VNET_HDR_LEN, &note, 0);
  if (!slot) {
    forward(q, pkt, len, v, &note);
    return;
  }
  if (inside && v == V_FORWARD_ENCRYPT && note.count == 1 && uso_take(&q->uso, note.out, note.out_len)) return;
  if (!inside && v == V_FORWARD_DECRYPT && gro_take(&q->gro, (uint8_t *)note.out, note.out_len, gro_write, q)) return;
  /* A packet at the start of an empty run's buffer (raw ESP, say) may stay there: nothing to put back. */
  int keep = inside && !q->uso.saved_len && note.count == 1;
  if (v >= V_FORWARD_PLAIN && note.out == slot && !keep) {
    memcpy(q->obuf + VNET_HDR_LEN, note.out, note.out_len);
    note.out = q->obuf + VNET_HDR_LEN;
  }
  if (inside)
    uso_unslot(&q->uso);
  else
    gro_unslot(&q->gro);
  forward(q, pkt, len, v, &note);
}

static void emit_segment(void *ctx, uint8_t *seg, size_t len) {
  dp_queue *q = ctx;
  stat_add(q->dp, DP_RX_SEGMENTS, 1);
  process_packet(q, seg, len);
}

#define FRAME_GSO 1 /* a GSO super-packet */
#define FRAME_TCP 2 /* a TCP segment (IPv4, or IPv6 without extension headers) */

/* What the frame was: FRAME_* bits (the reader's hold waits for neither). */
static int handle_frame(dp_queue *q, size_t n) {
  vnet_hdr h;
  datapath *dp = q->dp;
  stat_add(dp, DP_RX_FRAMES, 1);
  stat_add(dp, DP_RX_BYTES, n);
  if (n < VNET_HDR_LEN) {
    stat_add(dp, DP_RX_BAD, 1);
    return 0;
  }
  vnet_read(&h, q->rbuf);
  uint8_t *pkt = q->rbuf + VNET_HDR_LEN;
  size_t len = n - VNET_HDR_LEN;
  if ((h.gso_type & ~VNET_GSO_ECN) != VNET_GSO_NONE) {
    uint64_t wire = 0;
    stat_add(dp, DP_RX_GSO, 1);
    uint32_t segs = gso_count(&h, pkt, len, &wire);
    if (segs == 0) {
      stat_add(dp, DP_RX_BAD, 1);
      return FRAME_GSO;
    }
    /* Plain paths keep the super-packet whole: the kernel segments it (or not) on the way out. */
    if (exec_gso_plain(dp->ex, q->side, pkt, len, q->now, segs, wire)) {
      flush_out(q); /* keep the flow's order */
      write_frame(q, q->rbuf, n);
      return FRAME_GSO;
    }
    /* Group ESP in UDP from the outside: split where it lies, no copy (gso.h). */
    size_t hlen;
    if (q->side == SIDE_OUTSIDE && gso_is_esp_in_udp(&h, pkt, len, &hlen)) {
      stat_add(dp, DP_RX_GSO_ESP, 1);
      if (gso_split_esp_in_udp(&h, pkt, len, hlen, emit_segment, q) < 0) stat_add(dp, DP_RX_BAD, 1);
      return FRAME_GSO;
    }
    if (gso_segment(&h, pkt, len, emit_segment, q) < 0)
      stat_add(dp, DP_RX_BAD, 1);
    return FRAME_GSO;
  }
  if ((h.flags & VNET_F_NEEDS_CSUM) && gso_complete_csum(&h, pkt, len) != 0) {
    stat_add(dp, DP_RX_BAD, 1);
    return 0;
  }
  int tcp = len >= 20 && ip_first_proto(pkt) == IPPROTO_TCP_;
  process_packet(q, pkt, len);
  return tcp ? FRAME_TCP : 0;
}

static uint64_t mono_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* One burst from q's TUN: up to READ_BURST frames, then what they produced goes out, but for the
 * hold (below). Called when the queue is readable, or when its hold ends. */
static void burst(dp_queue *q) {
  datapath *dp = q->dp;
  int ending = q->hold_until != 0; /* the queue was not polled during the hold: its end reads it */
  q->now = now_ms();
  int frames = 0, kinds = 0, dry = 0;
  for (int i = 0; i < READ_BURST; i++) {
    ssize_t n = read(q->fd, q->rbuf, FRAME_MAX);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN) stat_add(dp, DP_RX_ERRORS, 1);
      dry = 1;
      break;
    }
    frames++;
    kinds |= handle_frame(q, (size_t)n);
  }
  /* The hold: small packets arriving one per frame (a stream of them: the burst held several)
   * leave their runs open for hold_ns, so that the stream crosses the kernel's forwarding path in
   * a few long super-packets instead of one short one per burst (each TUN write carries its
   * super-packet through the whole path, ~10 us here). Meanwhile the queue is not polled: what
   * arrives waits in the TUN's queue and is read at the end of the hold, all at once, instead of
   * waking this thread for every packet (which also costs the sender a wake-up each time); as long
   * as the stream goes on, holds follow each other, like a NIC's interrupt moderation. The runs
   * went out at the end of the hold in any case, so no packet waits longer than before; only a
   * packet of another kind that arrives during a hold (TCP, a ping) now waits for its end too. A
   * lone packet (a burst of one frame) never starts a hold, nor does TCP (its ACKs clock the
   * sender; its data comes as GSO super-packets, long runs already), nor a burst that left the
   * queue readable (it is read on at once). */
  int stream = dp->hold_ns && !kinds && frames >= 2 && dry && runs_open(q);
  if (ending) stat_add(dp, DP_RX_HELD, (uint64_t)frames);
  if (stream && !ending)
    flush_some(q, 1); /* a hold begins: the runs stay open */
  else
    flush_out(q); /* no stream, or a hold's end: the runs go out (and if the stream went on, the next hold begins) */
  flush_punts(q);
  q->hold_until = stream ? mono_ns() + dp->hold_ns : 0;
  if (stream) stat_add(dp, DP_TX_HOLDS, 1);
}

/* A device failed under a reader thread (deleted: the kernel then reports POLLERR), or its poll
 * did (poll_errno; q->name empty: the tunnel port's reader): the thread can no longer serve what
 * it read. The first to fail says so, once; the gateway decides (it exits, to be restarted, its
 * forwarding guard holding meanwhile). */
static void report_failure(datapath *dp, const dp_queue *q, short why, int poll_errno) {
  int none = 0;
  if (!atomic_compare_exchange_strong(&dp->failed, &none, 1)) return;
  if (poll_errno && !q->name[0])
    snprintf(dp->failure, sizeof dp->failure, "the reader of the tunnel port stopped: poll: %s", strerror(poll_errno));
  else if (poll_errno)
    snprintf(dp->failure, sizeof dp->failure, "the reader of TUN device %s stopped: ppoll: %s", q->name,
             strerror(poll_errno));
  else
    snprintf(dp->failure, sizeof dp->failure, "TUN device %s failed (%s%s%s): it was deleted, or the kernel closed it",
             q->name, why & POLLERR ? "POLLERR" : "", why & POLLHUP ? " POLLHUP" : "",
             why & POLLNVAL ? " POLLNVAL" : "");
  atomic_store(&dp->failed, 2); /* the message is complete */
  dp->submit(dp->submit_ctx, NULL);
}

/* A reader thread: one queue, or one queue of each device (q->pair). Serving both directions in
 * one thread means a packet that one direction's write causes at once (a terminal's reply, a TCP
 * ACK) is read without waking another thread. */
static void *reader(void *arg) {
  dp_queue *qs[2] = {arg, ((dp_queue *)arg)->pair};
  int nq = qs[1] ? 2 : 1;
  datapath *dp = qs[0]->dp;
  struct pollfd p[3];
  for (int k = 0; k < nq; k++) p[k] = (struct pollfd){.fd = qs[k]->fd, .events = POLLIN};
  p[nq] = (struct pollfd){.fd = dp->stopfd, .events = POLLIN};
  /* A hold is tens of microseconds: the default 50 us timer slack would double it. */
  if (dp->hold_ns) prctl(PR_SET_TIMERSLACK, 1000UL);
  dp_queue *failed = NULL;
  short why = 0;
  int poll_errno = 0;
  for (;;) {
    struct timespec ts, *tmo = NULL;
    uint64_t until = 0;
    /* A queue in its hold is not polled for input (errors are still reported) until it ends. */
    for (int k = 0; k < nq; k++) {
      p[k].events = qs[k]->hold_until ? 0 : POLLIN;
      if (qs[k]->hold_until && (!until || qs[k]->hold_until < until)) until = qs[k]->hold_until;
    }
    if (until) {
      uint64_t now = mono_ns();
      uint64_t left = until > now ? until - now : 0;
      ts.tv_sec = (time_t)(left / 1000000000u);
      ts.tv_nsec = (long)(left % 1000000000u);
      tmo = &ts;
    }
    int r = ppoll(p, (nfds_t)nq + 1, tmo, NULL);
    if (r < 0) {
      if (errno == EINTR) continue;
      failed = qs[0];
      poll_errno = errno;
      break;
    }
    if (p[nq].revents) break;
    for (int k = 0; k < nq; k++) {
      if (p[k].revents & (POLLERR | POLLHUP | POLLNVAL)) {
        stat_add(dp, DP_RX_ERRORS, 1);
        failed = qs[k];
        why = p[k].revents;
      } else if (p[k].revents || (qs[k]->hold_until && mono_ns() >= qs[k]->hold_until)) {
        burst(qs[k]); /* readable, or its hold ran out: what arrived meanwhile is read now */
      }
    }
    if (failed) break;
  }
  for (int k = 0; k < nq; k++) {
    flush_out(qs[k]);
    flush_punts(qs[k]);
  }
  if (failed) report_failure(dp, failed, why, poll_errno);
  return NULL;
}

/* ---- the tunnel port ---- */

/* One datagram as the sender sent it. */
static void handle_one_datagram(dp_queue *q, const udp_addr *from, const uint8_t *d, size_t len) {
  datapath *dp = q->dp;
  exec_note note;
  int family;
  uint16_t port;
  const uint8_t *src = from_addr(from, &family, &port);
  stat_add(dp, DP_UDP_RX, 1);
  stat_add(dp, DP_UDP_RX_BYTES, len);
  int v = exec_process_udp(dp->ex, family, src, port, d, len, q->now, q->obuf + VNET_HDR_LEN, &note);
  if (v == V_FORWARD_TUNNEL_DECRYPT) {
    uint8_t *out = (uint8_t *)note.out;
    if (q->fd < 0)
      stat_add(dp, DP_TX_ERRORS, 1);
    else
      forward_packet(q, out, note.out_len);
  } else if (v >= V_FIRST_PUNT && v <= V_LAST_PUNT) {
    punt_udp(q, from, d, len, v);
  }
}

/* One read: with UDP_GRO it may hold several datagrams of one flow, all of the segment size the
 * control message gives but the last. */
static void handle_datagram(dp_queue *q, int i) {
  datapath *dp = q->dp;
  struct msghdr *m = &dp->umsg[i].msg_hdr;
  size_t len = dp->umsg[i].msg_len;
  const uint8_t *d = dp->urbuf + (size_t)i * UDP_RX_BUF;
  if (m->msg_flags & MSG_TRUNC) {
    stat_add(dp, DP_UDP_RX, 1);
    stat_add(dp, DP_UDP_RX_TRUNCATED, 1);
    return;
  }
  size_t seg = 0;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c))
    if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO && c->cmsg_len >= CMSG_LEN(sizeof(int))) {
      int v;
      memcpy(&v, CMSG_DATA(c), sizeof v);
      if (v > 0) seg = (size_t)v;
    }
  if (seg == 0 || seg >= len) {
    handle_one_datagram(q, &dp->ufrom[i], d, len);
    return;
  }
  stat_add(dp, DP_UDP_RX_GRO, 1);
  for (size_t off = 0; off < len; off += seg)
    handle_one_datagram(q, &dp->ufrom[i], d + off, len - off < seg ? len - off : seg);
}

static void *udp_reader(void *arg) {
  dp_queue *q = arg;
  datapath *dp = q->dp;
  /* The stop eventfd, then the IPv4 and the IPv6 socket (those that are open). */
  struct pollfd p[3] = {{.fd = dp->stopfd, .events = POLLIN}};
  udp_sock *socks[2];
  int np = 1;
  for (int f = 0; f < 2; f++)
    if (dp->us[f]) {
      socks[np - 1] = dp->us[f];
      p[np].fd = dp->us[f]->fd;
      p[np++].events = POLLIN;
    }
  for (;;) {
    int r = poll(p, (nfds_t)np, -1);
    if (r < 0) {
      if (errno == EINTR) continue;
      report_failure(dp, q, 0, errno);
      break;
    }
    if (p[0].revents) break;
    q->now = now_ms();
    for (int k = 1; k < np; k++) {
      if (!p[k].revents) continue;
      for (int i = 0; i < UDP_RX_BURST; i++) {
        dp->umsg[i].msg_hdr.msg_namelen = sizeof dp->ufrom[i];
        dp->umsg[i].msg_hdr.msg_flags = 0;
        dp->umsg[i].msg_hdr.msg_control = dp->uctl[i].buf;
        dp->umsg[i].msg_hdr.msg_controllen = sizeof dp->uctl[i].buf;
      }
      int n = recvmmsg(socks[k - 1]->fd, dp->umsg, UDP_RX_BURST, MSG_DONTWAIT, NULL);
      if (n < 0) {
        if (errno != EINTR && errno != EAGAIN) stat_add(dp, DP_RX_ERRORS, 1);
        continue;
      }
      for (int i = 0; i < n; i++) handle_datagram(q, i);
    }
    flush_out(q);
    flush_punts(q);
  }
  flush_out(q);
  flush_punts(q);
  return NULL;
}

int dp_add_udp(datapath *dp, int family, const uint8_t *addr, uint16_t port, char *err, size_t errlen) {
  int f = family == 6;
  if (dp->us[f]) {
    snprintf(err, errlen, "the tunnel port is already open for IPv%d", family);
    return -1;
  }
  dp_queue *q = &dp->uq;
  if (dp->us[!f]) {
    /* The reader and its buffers exist: a second socket, of the other family. */
    dp->us[f] = udp_open(family, addr, port, err, errlen);
    return dp->us[f] ? 0 : -1;
  }
  dp->urbuf = malloc((size_t)UDP_RX_BURST * UDP_RX_BUF);
  memset(q, 0, sizeof *q);
  q->fd = -1;
  q->obuf = malloc(OUT_MAX);
  if (!dp->urbuf || !q->obuf) {
    free(dp->urbuf);
    free(q->obuf);
    dp->urbuf = q->obuf = NULL;
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  dp->us[f] = udp_open(family, addr, port, err, errlen);
  if (!dp->us[f]) {
    free(dp->urbuf);
    free(q->obuf);
    dp->urbuf = q->obuf = NULL;
    return -1;
  }
  for (int i = 0; i < UDP_RX_BURST; i++) {
    dp->uiov[i].iov_base = dp->urbuf + (size_t)i * UDP_RX_BUF;
    dp->uiov[i].iov_len = UDP_RX_BUF;
    mmsg_single(&dp->umsg[i], &dp->ufrom[i], sizeof dp->ufrom[i], &dp->uiov[i]);
  }
  q->dp = dp;
  q->udp = 1;
  q->side = SIDE_OUTSIDE;
  q->gro_ok = (dp->options & DP_OPT_GRO) && gro_init(&q->gro) == 0;
  return 0;
}

int dp_send_udp(datapath *dp, int family, const uint8_t *dst, uint16_t port, const uint8_t *data, size_t len, int df) {
  udp_sock *s = dp->us[family == 6];
  if (!s) return -ENOTCONN;
  int r = udp_send(s, dst, port, data, len, df, 0);
  if (r == 0) {
    stat_add(dp, DP_UDP_TX, 1);
    stat_add(dp, DP_UDP_TX_BYTES, len);
  } else {
    stat_add(dp, DP_UDP_TX_ERRORS, 1);
  }
  return r;
}

int dp_start(datapath *dp, char *err, size_t errlen) {
  sigset_t all, old;
  int udp = dp->us[0] || dp->us[1];
  if (udp) {
    /* Decrypted packets go to the inside TUN (any TUN would do: the main table routes them). */
    dp->uq.fd = dp->wfd[SIDE_INSIDE] >= 0 ? dp->wfd[SIDE_INSIDE] : dp->wfd[SIDE_OUTSIDE];
    for (int i = 0; i < dp->nq; i++) {
      dp->q[i].uo = udp_out_new();
      if (!dp->q[i].uo) {
        snprintf(err, errlen, "out of memory");
        dp_stop(dp);
        return -1;
      }
    }
  }
  /* Coalesce ESP in UDP only when every TUN takes USO (the receiving side's too, as far as this
   * gateway can tell) and the option asks for it. */
  for (int i = 0; i < dp->nq; i++) {
    dp->q[i].uso_ok = dp->uso && (dp->options & DP_OPT_USO) && uso_init(&dp->q[i].uso, OUT_MAX - VNET_HDR_LEN) == 0;
    dp->q[i].uro_ok = dp->uso && (dp->options & DP_OPT_GRO) && uso_init_forwarded(&dp->q[i].uro, FRAME_MAX) == 0;
  }
  if (udp) dp->uq.uro_ok = dp->uso && (dp->options & DP_OPT_GRO) && uso_init_forwarded(&dp->uq.uro, FRAME_MAX) == 0;
  /* One thread per queue of the inside device and one of the outside device (reader()). */
  for (int i = 0; i < dp->nq; i++) {
    dp_queue *a = &dp->q[i];
    for (int j = 0; a->side == SIDE_INSIDE && j < dp->nq; j++) {
      dp_queue *b = &dp->q[j];
      if (b->side == SIDE_OUTSIDE && !b->follower) {
        a->pair = b;
        b->follower = 1;
        break;
      }
    }
  }
  unsigned threads = 0;
  sigfillset(&all);
  /* Reader threads take no signals: node handles them on the main thread. */
  pthread_sigmask(SIG_SETMASK, &all, &old);
  for (int i = 0; i < dp->nq; i++) {
    if (dp->q[i].follower) continue;
    int e = pthread_create(&dp->q[i].thread, NULL, reader, &dp->q[i]);
    if (e != 0) {
      snprintf(err, errlen, "pthread_create: %s", strerror(e));
      pthread_sigmask(SIG_SETMASK, &old, NULL);
      dp_stop(dp);
      return -1;
    }
    dp->q[i].started = 1;
    char name[16];
    snprintf(name, sizeof name, "kasane-tun%u", threads++ % 10u);
    pthread_setname_np(dp->q[i].thread, name);
  }
  if (udp) {
    int e = pthread_create(&dp->uq.thread, NULL, udp_reader, &dp->uq);
    if (e != 0) {
      snprintf(err, errlen, "pthread_create: %s", strerror(e));
      pthread_sigmask(SIG_SETMASK, &old, NULL);
      dp_stop(dp);
      return -1;
    }
    dp->uq.started = 1;
    pthread_setname_np(dp->uq.thread, "kasane-udp");
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return 0;
}

int dp_write(datapath *dp, int side, const uint8_t *pkt, size_t len) {
  uint8_t hdr[VNET_HDR_LEN] = {0};
  struct iovec iov[2] = {{hdr, VNET_HDR_LEN}, {(void *)pkt, len}};
  if (side != SIDE_INSIDE && side != SIDE_OUTSIDE) return -EINVAL;
  int fd = dp->wfd[side];
  if (fd < 0) return -ENODEV;
  /* One writev is one packet (header + packet): what a TUN accepts per call. */
  ssize_t w;
  do w = writev(fd, iov, 2);
  while (w < 0 && errno == EINTR);
  if (w < 0) return -errno;
  stat_add(dp, DP_INJECTED, 1);
  return 0;
}

int dp_send_local(datapath *dp, const uint8_t *pkt, size_t len) {
  int v6 = len >= IPV6_HDR_LEN && (pkt[0] >> 4) == 6;
  if (v6 ? (size_t)rd16(pkt + 4) + IPV6_HDR_LEN != len : len < 20 || (pkt[0] >> 4) != 4 || rd16(pkt + 2) != len)
    return -EINVAL;
  int *fd = &dp->rawfd[v6];
  if (*fd < 0) {
    /* IPPROTO_RAW implies header inclusion (IP_HDRINCL; for IPv6 too, Linux): the packet goes out
     * as given (an ICMPv6 Packet Too Big from the gateway's outside address), routed by its
     * destination. */
    *fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
    if (*fd < 0) return -errno;
  }
  udp_addr to;
  memset(&to, 0, sizeof to);
  socklen_t tl;
  if (v6) {
    to.v6.sin6_family = AF_INET6;
    memcpy(&to.v6.sin6_addr, pkt + 24, 16);
    tl = sizeof to.v6;
  } else {
    to.v4.sin_family = AF_INET;
    memcpy(&to.v4.sin_addr, pkt + 16, 4);
    tl = sizeof to.v4;
  }
  ssize_t w;
  do w = sendto(*fd, pkt, len, 0, &to.sa, tl);
  while (w < 0 && errno == EINTR);
  if (w < 0) return -errno;
  stat_add(dp, DP_TX_LOCAL, 1);
  return 0;
}

void dp_stop(datapath *dp) {
  uint64_t one = 1;
  if (write(dp->stopfd, &one, sizeof one) < 0) { /* the eventfd cannot overflow from one write */
  }
  for (int i = 0; i < dp->nq; i++) {
    dp_queue *q = &dp->q[i];
    if (q->started) pthread_join(q->thread, NULL);
    q->started = 0;
  }
  if (dp->uq.started) pthread_join(dp->uq.thread, NULL);
  dp->uq.started = 0;
  if (dp->us[0] || dp->us[1]) {
    /* Its fd is a TUN's, closed below with the queues. */
    if (dp->uq.gro_ok) gro_free(&dp->uq.gro);
    dp->uq.gro_ok = 0;
    if (dp->uq.uro_ok) uso_free(&dp->uq.uro);
    dp->uq.uro_ok = 0;
    free(dp->uq.obuf);
    dp->uq.obuf = NULL;
    dp->uq.fd = -1;
    free(dp->urbuf);
    dp->urbuf = NULL;
  }
  for (int i = 0; i < dp->nq; i++) {
    dp_queue *q = &dp->q[i];
    if (q->fd >= 0) close(q->fd);
    q->fd = -1;
    if (q->gro_ok) gro_free(&q->gro);
    q->gro_ok = 0;
    if (q->uso_ok) uso_free(&q->uso);
    q->uso_ok = 0;
    if (q->uro_ok) uso_free(&q->uro);
    q->uro_ok = 0;
    egress_free(q->eg);
    q->eg = NULL;
    udp_out_free(q->uo);
    q->uo = NULL;
    free(q->rbuf);
    free(q->obuf);
    q->rbuf = q->obuf = NULL;
  }
  dp->nq = 0;
  dp->wfd[0] = dp->wfd[1] = -1;
  udp_close(dp->us[0]);
  udp_close(dp->us[1]);
  dp->us[0] = dp->us[1] = NULL;
}

void dp_stats(datapath *dp, uint64_t out[DP_STAT_COUNT]) {
  for (int i = 0; i < DP_STAT_COUNT; i++) out[i] = atomic_load_explicit(&dp->stats[i], memory_order_relaxed);
}

const char *dp_failure(datapath *dp) { return atomic_load(&dp->failed) == 2 ? dp->failure : ""; }

void dp_free(datapath *dp) {
  dp_stop(dp);
  for (int i = 0; i < 2; i++)
    if (dp->rawfd[i] >= 0) close(dp->rawfd[i]);
  close(dp->stopfd);
  pthread_mutex_destroy(&dp->pool_lock);
  exec_release(dp->ex);
  free(dp);
}
