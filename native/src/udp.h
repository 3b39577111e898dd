/* The tunnel port: a UDP socket bound to the gateway's outside address (IPv4 or IPv6; a dual-stack
 * gateway has one of each), port 4500, shared by IKE
 * (behind the non-ESP marker) and ESP in UDP (RFC 3948, RFC 7296 section 2.23). Native because
 * node:dgram moves ~75 k datagrams/s here (dataplane.md) while ESP in UDP must keep up with the
 * TUN path: datagrams are received with recvmmsg and sent with sendmmsg, in batches, by the
 * datapath's own threads; JavaScript only sees IKE (and unknown SPIs) and sends IKE through it. */
#ifndef KASANE_UDP_H
#define KASANE_UDP_H

#include <netinet/in.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

/* How the kernel may treat a datagram's DF bit (IP_MTU_DISCOVER, per socket, switched per run of
 * datagrams under the socket's lock). */
enum { UDP_DF_AUTO = 0, UDP_DF_SET = 1, UDP_DF_CLEAR = 2 };

typedef struct {
  int fd;
  pthread_mutex_t lock; /* the send side: mode switch + send */
  int mode;             /* current UDP_DF_* (-1: unknown) */
  int gso;              /* UDP_SEGMENT works: runs of equal-size datagrams go out as one send */
  int gro;              /* UDP_GRO is on: a read may hold several datagrams of one flow */
  int family;           /* 4 or 6 (an IPv6 socket is IPv6-only) */
  uint8_t addr[16];
  uint16_t port;
} udp_sock;

/* Binds addr:port (family 4: 4 bytes, 6: 16 bytes; all zero: any). NULL with err set on failure. */
udp_sock *udp_open(int family, const uint8_t *addr, uint16_t port, char *err, size_t errlen);
void udp_close(udp_sock *s);

/* One datagram (IKE from JavaScript) to dst (of the socket's family): 0 or -errno. */
int udp_send(udp_sock *s, const uint8_t *dst, uint16_t port, const uint8_t *data, size_t len, int df, int tos);

/* A socket address of either family. */
typedef union {
  struct sockaddr sa;
  struct sockaddr_in v4;
  struct sockaddr_in6 v6;
} udp_addr;

#define UDP_OUT_MAX 64
#define UDP_GSO_MAX_BYTES 65000 /* a UDP payload carries at most 65507 bytes */

/* A per-thread queue of datagrams for one sendmmsg (ESP from the executor). Datagrams with DF to
 * one destination, of one size (the last of a run may be shorter), share a message sent with
 * UDP_SEGMENT when the socket supports it: the kernel then carries the run as one UDP GSO
 * super-packet as far as it can (upstream wireguard-go does the same). */
typedef struct {
  udp_sock *sock; /* the socket the queued messages go out of (one family per flush) */
  int n;  /* datagrams */
  int nm; /* messages */
  size_t used;
  uint8_t *stage;
  size_t len[UDP_OUT_MAX];
  struct iovec iov[UDP_OUT_MAX];
  /* per message */
  int df[UDP_OUT_MAX];
  int tos[UDP_OUT_MAX];
  int count[UDP_OUT_MAX]; /* datagrams in the message */
  size_t seg[UDP_OUT_MAX], bytes[UDP_OUT_MAX];
  int closed[UDP_OUT_MAX];
  udp_addr to[UDP_OUT_MAX];
  struct mmsghdr msg[UDP_OUT_MAX];
  union {
    struct cmsghdr align;
    uint8_t buf[CMSG_SPACE(sizeof(int)) + CMSG_SPACE(sizeof(uint16_t))];
  } ctl[UDP_OUT_MAX];
} udp_out;

udp_out *udp_out_new(void);
void udp_out_free(udp_out *o);
/* Queues the UDP payload of an outer IPv4 or IPv6 + UDP packet made by the executor (tunnel mode),
 * to go out of s (the socket of the outer family): its destination address and port, DF bit and
 * TOS (IPv6: traffic class; never fragmented, as if DF) are taken from the outer headers. Flushes
 * first when the queue is full or holds messages for the other socket. */
void udp_out_add(udp_out *o, udp_sock *s, const uint8_t *outer, size_t len, uint64_t *sent, uint64_t *bytes,
                 uint64_t *errors);
/* Sends everything queued. */
void udp_out_flush(udp_out *o, uint64_t *sent, uint64_t *bytes, uint64_t *errors);

#endif
