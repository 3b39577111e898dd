/* The executor: the key-table entries the core installed, applied to one IPv4 or IPv6 packet at a time
 * (docs/executor.md). Native so the TUN reader thread can run every packet through it without
 * a JavaScript call per packet (dataplane.md: ~119 k packets/s with JS in the loop, and the GSO
 * path needs segmentation + AES-GCM in the same thread to reach several Gbit/s).
 *
 * Thread safety: a readers-writer lock per executor. Packets take it to read, so reader threads
 * (one per TUN queue, the tunnel port's) run at once, crypto included: each thread seals and opens
 * with cipher contexts of its own (esp.h), takes sequence numbers atomically, and counts in a row of
 * counters of its own; a receiving SA's replay window has a spinlock of its own, held for the window
 * only. Installs and removals take it to write (writers first: a stream of packets cannot hold them
 * off), so an install from JavaScript waits for the packets in flight (about a microsecond each), and
 * no packet can be using an SA it frees. */
#ifndef KASANE_EXECUTOR_H
#define KASANE_EXECUTOR_H

#include <stddef.h>
#include <stdint.h>

enum { SIDE_INSIDE = 0, SIDE_OUTSIDE = 1 };
enum { ACT_ENCRYPT = 0, ACT_PLAIN = 1, ACT_DISCARD = 2, ACT_PENDING = 3 };

/* Counter indexes. Drop and punt verdict codes are the index of the counter they increment. */
enum {
  C_DROP_MALFORMED,
  C_DROP_DISCARD,
  C_DROP_REPLAY,
  C_DROP_AUTH_FAILED,
  C_DROP_VPN_MISMATCH,
  C_DROP_PEER_MISMATCH,
  C_DROP_UNSOLICITED_PLAIN,
  C_DROP_FRAGMENT,
  C_DROP_NO_SA,
  C_DROP_SELECTOR,
  C_DROP_TUNNEL_KEEPALIVE,
  C_DROP_TUNNEL_SEQ_EXHAUSTED,
  C_DROP_TUNNEL_DUMMY,
  C_DROP_BAD_IPV6, /* an IPv6 packet whose fixed header or extension-header chain is malformed */
  C_PUNT_SEARCH,
  C_PUNT_MISS,
  C_PUNT_PENDING,
  C_PUNT_UNKNOWN_SPI,
  C_PUNT_TOO_BIG,
  C_PUNT_IKE,
  C_ENCRYPT_PACKETS,
  C_ENCRYPT_BYTES,
  C_DECRYPT_PACKETS,
  C_DECRYPT_BYTES,
  C_PLAIN_PACKETS,
  C_PLAIN_BYTES,
  C_TUNNEL_ENCRYPT_PACKETS,
  C_TUNNEL_ENCRYPT_BYTES,
  C_TUNNEL_DECRYPT_PACKETS,
  C_TUNNEL_DECRYPT_BYTES,
  C_ENCRYPT_FRAGMENTS, /* ESP packets that carry a fragment the executor made (no DF, larger than the path) */
  C_PASS_PACKETS, /* IPv6 the link needs, passed untouched (never intercepted) */
  C_PASS_BYTES,
  C_COUNT
};
#define V_FIRST_PUNT C_PUNT_SEARCH
#define V_LAST_PUNT C_PUNT_IKE
enum {
  V_FORWARD_PLAIN = 100,
  V_FORWARD_ENCRYPT = 101,
  V_FORWARD_DECRYPT = 102,
  V_FORWARD_TUNNEL_ENCRYPT = 103, /* out: outer IPv4 + UDP + ESP, for the tunnel socket */
  V_FORWARD_TUNNEL_DECRYPT = 104, /* out: the inner IPv4 or IPv6 packet, for the inside */
  V_FORWARD_PASS = 105            /* IPv6 the link needs: out = the packet as it came */
};

/* Largest growth in tunnel mode: outer IPv4 (20) + UDP (8) + ESP header and IV (16) + padding (3)
 * + pad length and next header (2) + ICV (16); 20 more with an outer IPv6 header. */
#define TUNNEL_OVERHEAD_MAX 65
#define TUNNEL6_OVERHEAD_MAX 85
/* Group ESP in UDP (the default encapsulation): a UDP header, port 4500 to 4500, between the IP
 * header and ESP, so that a run of them can travel as one UDP GSO super-packet (docs/dataplane.md).
 * Raw ESP (protocol 50) stays selectable per VPN; receivers accept both. */
enum { ENCAP_UDP = 0, ENCAP_ESP = 1 };
#define GROUP_UDP_PORT 4500
#define GROUP_UDP_HEADER 8
/* Group ESP, carried form (no DF, or a fragment): outer IPv4 (20) + UDP (8) + ESP_OVERHEAD_MAX (37)
 * around the whole inner packet (8 less for raw ESP); a packet larger than the path is fragmented
 * first, into at most EXEC_MAX_FRAGMENTS ESP packets. */
#define CARRIED_OVERHEAD_MAX 65
/* The IPv6 carried form (inner next header 4 or 41): outer IPv6 (40) + UDP (8) + ESP (37). IPv6 is
 * never fragmented by the executor: too big is answered with Packet Too Big by the core. */
#define CARRIED6_OVERHEAD_MAX 85
#define EXEC_MAX_FRAGMENTS 64
/* Room the caller's out buffer needs beyond the input length: the most fragments, each with the
 * carried overhead and a copy of the inner header (at most 60 bytes). */
#define EXEC_OUT_EXTRA (EXEC_MAX_FRAGMENTS * (CARRIED_OVERHEAD_MAX + 60))
#define TUNNEL_HDR_LEN 28 /* outer IPv4 (20) + UDP (8) */
#define TUNNEL6_HDR_LEN 48 /* outer IPv6 (40) + UDP (8) */
#define TUNNEL_WINDOW_MAX 4096
/* A group receiving SA's window: wide, because the reader threads of the sending gateway seal with
 * one SA and the receiving gateway's queues open it, each at its own pace (docs/executor.md,
 * "Receiving SAs"). */
#define GROUP_REPLAY_WINDOW 32768

#define ID_NAME_MAX 63

typedef struct {
  const uint8_t *out; /* forwarded packet: the input itself (plain) or the caller's out buffer */
  size_t out_len;
  /* Packets at out, back to back (each IPv4, its total length tells where the next begins): more
   * than 1 when a packet without DF was fragmented before group encryption (seq: the first's). */
  uint32_t count;
  uint32_t vpn, spi;
  uint64_t seq;
  char sender[ID_NAME_MAX + 1]; /* decrypt: the SA's sender; tunnel: the SA's peer */
} exec_note;

typedef struct executor executor;

executor *exec_new(void);
void exec_retain(executor *ex);
/* Frees the executor when the last reference goes. */
void exec_release(executor *ex);

/* All install functions replace an existing entry with the same key. Return 0, -1 (out of memory
 * or OpenSSL failure), or -2 (invalid argument). */
int exec_install_path(executor *ex, int family, const uint8_t *local, const uint8_t *remote, int action,
                      uint32_t vpn, const char *peer, size_t peer_len, int64_t mtu /* -1: none */,
                      int64_t tunnel_spi /* -1: group mode; else encrypt with this tunnel sending SA */);
int exec_remove_path(executor *ex, int family, const uint8_t *local, const uint8_t *remote);
int exec_install_tx(executor *ex, uint32_t spi, uint32_t vpn, uint32_t epoch, const uint8_t key[32],
                    const uint8_t salt[4], uint64_t next_seq, int encap /* ENCAP_* */);
int exec_remove_tx(executor *ex, uint32_t vpn);
/* floor > 1: sequence numbers below it count as received (a restarted receiver's learned floor);
 * a reinstall keeps the window and only ever raises it to the floor. */
int exec_install_rx(executor *ex, uint32_t spi, uint32_t vpn, uint32_t epoch, const char *sender,
                    size_t sender_len, const uint8_t key[32], const uint8_t salt[4], uint64_t floor);
int exec_remove_rx(executor *ex, uint32_t spi);

/* A traffic selector: an inclusive range of addresses of one family (IPv4 in the first 4 bytes). */
typedef struct {
  uint8_t family;
  uint8_t start[16], end[16];
} tunnel_range;

/* Tunnel mode (IKE Child SAs, ESP in UDP): what both halves of a Child SA are installed with. The
 * outer addresses are of one family (4: 4 bytes, 6: 16 bytes); ports host order. */
typedef struct {
  uint32_t spi, vpn;
  const char *peer;
  size_t peer_len;
  const uint8_t *key; /* 16 or 32 bytes (AES-128 or AES-256 GCM) */
  size_t keylen;
  const uint8_t *salt; /* 4 bytes */
  int family;
  const uint8_t *laddr, *raddr;
  uint16_t lport, rport;
} tunnel_sa;

/* A sending SA's reinstall keeps the larger sequence number and the counters; a receiving SA's keeps
 * its replay window (size included) and counters. ranges: nlocal then nremote selectors. */
int exec_install_tunnel_tx(executor *ex, const tunnel_sa *sa, uint64_t next_seq, uint64_t soft);
int exec_remove_tunnel_tx(executor *ex, uint32_t spi);
int exec_install_tunnel_rx(executor *ex, const tunnel_sa *sa, const tunnel_range *ranges, uint32_t nlocal,
                           uint32_t nremote, uint32_t window);
int exec_remove_tunnel_rx(executor *ex, uint32_t spi);

/* One UDP datagram received on the tunnel port from src:sport (family 4: 4 bytes, 6: 16 bytes;
 * payload = UDP payload). out must hold len bytes. Returns V_FORWARD_TUNNEL_DECRYPT (note->out =
 * the inner packet) or a drop/punt counter index (C_PUNT_IKE, C_PUNT_UNKNOWN_SPI, ...). */
int exec_process_udp(executor *ex, int family, const uint8_t *src, uint16_t sport, const uint8_t *payload, size_t len,
                     double now, uint8_t *out, exec_note *note);

/* Per-SA statistics; 1 when the SA exists. peer receives the peer id (NUL-terminated).
 * tx: vpn, packets, bytes, last used, next seq, soft limit.
 * rx: vpn, packets, bytes, last used, highest seq, replay drops, auth failures, selector drops,
 *     last source family (0: none yet), last source port; last_src receives its address. */
#define TUNNEL_TX_STATS 6
#define TUNNEL_RX_STATS 10
int exec_tunnel_tx_stats(executor *ex, uint32_t spi, double out[TUNNEL_TX_STATS], char peer[ID_NAME_MAX + 1]);
int exec_tunnel_rx_stats(executor *ex, uint32_t spi, double out[TUNNEL_RX_STATS], char peer[ID_NAME_MAX + 1],
                         uint8_t last_src[16]);

/* Processes one packet. pkt may be modified in place (MSS clamping). out must hold len +
 * EXEC_OUT_EXTRA bytes. Returns a V_FORWARD_* code (note filled) or a drop/punt counter index.
 * flags: EXEC_RECHECK when the packet was punted before and its punt counted (the core runs it
 * again after the datapath punted it): a punt now is not counted a second time. */
#define EXEC_RECHECK 1
int exec_process(executor *ex, int side, uint8_t *pkt, size_t len, double now, uint8_t *out, exec_note *note,
                 int flags);

/* For a GSO super-packet: if its path rule is plain, counts it as `segments` packets of `bytes` in
 * total and returns 1 (forward it whole); otherwise counts nothing and returns 0 (segment it and
 * process each segment). */
int exec_gso_plain(executor *ex, int side, const uint8_t *pkt, size_t len, double now, uint32_t segments,
                   uint64_t bytes);

/* 1 and stats[0..2] = packets, bytes, last used (ms); 0 when there is no such rule. */
int exec_path_stats(executor *ex, int family, const uint8_t *local, const uint8_t *remote, double stats[3]);
void exec_counters(executor *ex, uint64_t out[C_COUNT]);
/* Next sequence number of the VPN's sending SA; 0 when there is none. */
uint64_t exec_tx_next_seq(executor *ex, uint32_t vpn);

/* Calls fn for every rule (under the lock: fn must not call back into the executor). */
typedef void (*exec_rule_fn)(void *ctx, int family, const uint8_t *local, const uint8_t *remote, int action,
                             uint64_t packets, uint64_t bytes, double last_used);
void exec_foreach_rule(executor *ex, exec_rule_fn fn, void *ctx);

#endif
