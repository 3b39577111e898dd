/* The TUN datapath: reader threads that drain TUN queues in bursts, segment GSO super-packets, run
 * every packet through the executor, write forwarded packets back (one write per packet: a TUN has
 * no batch write, writev injects a single packet), and hand punted packets to JavaScript in
 * batches. Native because every JS-side alternative measured here is far slower or broken
 * (dataplane.md: fs.read 40 k packets/s and it hangs exit; net.Socket rejects the fd; a
 * non-draining level-triggered uv_poll spins), while a native loop with GSO reached 17 Gbit/s. */
#ifndef KASANE_DATAPATH_H
#define KASANE_DATAPATH_H

#include <stddef.h>
#include <stdint.h>

#include "executor.h"

#define DP_MAX_QUEUES 8

/* A punt batch: packet bytes packed into buf, and per packet three words in meta:
 * offset, length, side << 8 | verdict code (a C_PUNT_* counter index). The memory belongs to
 * JavaScript Buffers that the addon keeps alive. Datagrams from the tunnel port have side
 * DP_SIDE_UDP and start with a 24-byte prefix: source address (16; IPv4 in the first 4), family
 * (1: 4 or 6), 0, source port (2), local port (2), 0 (2), then the UDP payload as received (IKE
 * keeps its non-ESP marker). A batch holds punts of one thread, so it is either all packets or all
 * datagrams. */
#define DP_SIDE_UDP 2
#define DP_UDP_PREFIX 24
typedef struct {
  uint8_t *buf;
  size_t cap;
  uint32_t *meta;
  size_t max;
  size_t count, used;
  int in_use;
  int index;
} punt_batch;

enum {
  DP_RX_FRAMES,
  DP_RX_BYTES,
  DP_RX_GSO,
  DP_RX_SEGMENTS,
  DP_RX_BAD,
  DP_RX_ERRORS,
  DP_TX_PACKETS,
  DP_TX_BYTES,
  DP_TX_ERRORS,
  DP_PUNTS,
  DP_PUNT_BATCHES,
  DP_PUNTS_DROPPED,
  DP_INJECTED,
  DP_TX_RAW, /* of tx.packets: ESP sent through the raw socket */
  DP_UDP_RX, /* datagrams read from the tunnel port */
  DP_UDP_RX_BYTES,
  DP_UDP_RX_TRUNCATED, /* larger than the receive buffer: dropped */
  DP_UDP_TX, /* datagrams sent on the tunnel port (tunnel ESP and IKE) */
  DP_UDP_TX_BYTES,
  DP_UDP_TX_ERRORS, /* refused by the socket, or tunnel ESP without a tunnel socket */
  DP_TX_LOCAL,      /* packets of the gateway's own sent by dp_send_local (ICMP errors) */
  DP_TX_GSO,        /* UDP GSO super-packets of group ESP written (of tx.packets) */
  DP_RX_GSO_ESP,    /* UDP GSO super-packets of group ESP read from the outside (of rx.gso) */
  DP_UDP_RX_GRO,    /* reads from the tunnel port that held several datagrams (UDP_GRO) */
  DP_TX_HOLDS,      /* times a reader held its runs of small packets open after its queue ran dry */
  DP_RX_HELD,       /* frames read at the end of a hold: they waited in the TUN's queue, woke no one */
  DP_STAT_COUNT
};

typedef struct datapath datapath;
/* Called from a reader thread with a filled batch. Returns 0 if it took the batch (and will call
 * dp_release_batch later), or -1 (the datapath releases it and counts its packets as dropped).
 * b == NULL: a reader thread stopped because a device or its poll failed (dp_failure says which);
 * called once. */
typedef int (*punt_submit_fn)(void *ctx, punt_batch *b);

#define DP_OPT_GRO 1        /* coalesce forwarded TCP segments into GSO super-packets */
#define DP_OPT_RAW_EGRESS 2 /* send ESP through a raw socket in batches instead of the TUN */
#define DP_OPT_USO 4        /* write runs of group ESP in UDP as UDP GSO super-packets */
#define DP_OPT_HOLD 8       /* hold runs of small packets open briefly after a queue ran dry */

datapath *dp_new(executor *ex, punt_batch *batches, size_t nbatches, punt_submit_fn submit, void *ctx, int options);
/* Opens `queues` queues of TUN device `name` (created if absent) for one side. 0, or -1 with err set. */
int dp_add_device(datapath *dp, const char *name, int side, int queues, char *err, size_t errlen);
int dp_start(datapath *dp, char *err, size_t errlen);
/* Opens the tunnel port (UDP, bound to addr:port; family 4: 4 bytes, 6: 16 bytes) before dp_start:
 * a thread reads it, decrypts ESP into the inside TUN and punts IKE; tunnel ESP from the executor
 * leaves through it. A dual-stack gateway calls it once per family (one thread reads both). */
int dp_add_udp(datapath *dp, int family, const uint8_t *addr, uint16_t port, char *err, size_t errlen);
/* Sends one datagram from the tunnel port of dst's family (IKE: the caller adds the non-ESP
 * marker). df: UDP_DF_*. 0 or -errno (-ENOTCONN without a tunnel port of that family). */
int dp_send_udp(datapath *dp, int family, const uint8_t *dst, uint16_t port, const uint8_t *data, size_t len, int df);
/* Injects one packet into the TUN device of `side` (no offloads). 0 or -errno. */
int dp_write(datapath *dp, int side, const uint8_t *pkt, size_t len);
/* Sends one packet of the gateway's own (its source is a local address, e.g. an ICMP error to a
 * terminal) as locally originated, through a raw socket: a TUN write of it would be a martian to
 * the kernel (a local source arriving on an interface) and dropped. 0 or -errno. */
int dp_send_local(datapath *dp, const uint8_t *pkt, size_t len);
/* Stops and joins the reader threads (they flush their last punts first) and closes the fds. */
void dp_stop(datapath *dp);
void dp_release_batch(datapath *dp, punt_batch *b);
void dp_stats(datapath *dp, uint64_t out[DP_STAT_COUNT]);
/* Why a reader thread stopped on its own (a TUN device deleted or failed, a failed poll), or "" while
 * none has. */
const char *dp_failure(datapath *dp);
void dp_free(datapath *dp);

#endif
