/* IPv6 parsing for the fast path (see ipv6.h). Native because every IPv6 packet of the TUN reader
 * threads is walked before the rule lookup; the TypeScript walk (src/core) gives the same results. */
#include "ipv6.h"

int ipv6_parse(const uint8_t *pkt, size_t len, ipv6_info *ip) {
  if (len < IPV6_HDR_LEN || pkt[0] >> 4 != 6) return -1;
  size_t end = IPV6_HDR_LEN + (size_t)rd16(pkt + 4);
  if (end > len) return -1;
  ip->tot = end;
  ip->nh = pkt[6];
  ip->fragment = V6_FRAG_NONE;
  size_t off = IPV6_HDR_LEN;
  uint8_t nh = pkt[6];
  for (unsigned count = 0;; count++) {
    size_t hl;
    if (nh == 0 || nh == 43 || nh == 60) {
      /* Hop-by-hop options are only allowed directly after the fixed header (RFC 8200 section 4.1). */
      if (nh == 0 && count != 0) return -1;
      if (end - off < 2) return -1;
      hl = ((size_t)pkt[off + 1] + 1) * 8;
    } else if (nh == 44) {
      hl = 8;
    } else if (nh == 51) {
      if (end - off < 2) return -1;
      hl = ((size_t)pkt[off + 1] + 2) * 4;
    } else {
      break;
    }
    if (count == IPV6_EXT_MAX || end - off < hl) return -1;
    uint8_t next = pkt[off];
    if (nh == 44) {
      ip->fragment = (rd16(pkt + off + 2) & 0xfff8) ? V6_FRAG_LATER : V6_FRAG_FIRST;
      if (ip->fragment == V6_FRAG_LATER) {
        /* What follows is the middle of the original packet: there is no header to walk. */
        off += hl;
        ip->upper_proto = next;
        ip->has_upper = 0;
        ip->upper_off = off;
        ip->ext_len = off - IPV6_HDR_LEN;
        return 0;
      }
    }
    off += hl;
    nh = next;
  }
  ip->upper_proto = nh;
  ip->has_upper = 1;
  ip->upper_off = off;
  ip->ext_len = off - IPV6_HDR_LEN;
  return 0;
}

static int link_local(const uint8_t *a) { return a[0] == 0xfe && (a[1] & 0xc0) == 0x80; }

static int unspecified(const uint8_t *a) {
  for (int i = 0; i < 16; i++)
    if (a[i]) return 0;
  return 1;
}

/* ICMPv6 types whose messages never leave the link: MLD (130-132, 143), router and neighbour
 * discovery (133-137), inverse ND (141, 142), SEND (148, 149), multicast router discovery
 * (151-153), RPL (155). */
static int link_scoped_icmpv6(uint8_t type) {
  switch (type) {
    case 130: case 131: case 132: case 133: case 134: case 135: case 136: case 137:
    case 141: case 142: case 143: case 148: case 149: case 151: case 152: case 153: case 155:
      return 1;
    default:
      return 0;
  }
}

int ipv6_never_intercepted(const uint8_t *pkt, const ipv6_info *ip) {
  const uint8_t *src = pkt + 8, *dst = pkt + 24;
  if (link_local(src) || link_local(dst) || dst[0] == 0xff || unspecified(src)) return 1;
  return ip->upper_proto == IPPROTO_ICMPV6_ && ip->has_upper && ip->upper_off < ip->tot &&
         link_scoped_icmpv6(pkt[ip->upper_off]);
}
