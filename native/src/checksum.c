/* The bulk of the Internet checksum (ip.h, csum_add): every byte of every segment is summed at least
 * once per gateway (segmentation on the sender, GRO's check on the receiver), so the wide loop is
 * vectorised where the CPU allows. The same 32-bit words are added as by the scalar loop, so the
 * result is identical, not just equivalent. */
#include <string.h>

#include "ip.h"

static uint64_t words_scalar(const uint8_t *p, size_t len) {
  uint64_t a = 0, b = 0;
  for (; len >= 16; p += 16, len -= 16) {
    uint64_t v[2];
    memcpy(v, p, 16);
    a += (v[0] & 0xffffffffu) + (v[0] >> 32);
    b += (v[1] & 0xffffffffu) + (v[1] >> 32);
  }
  return a + b;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/* 64 bytes per round: the 32-bit words widened to 64-bit lanes (no overflow for any IP length). */
__attribute__((target("avx2"))) static uint64_t words_avx2(const uint8_t *p, size_t len) {
  __m256i z = _mm256_setzero_si256(), a = z, b = z;
  for (; len >= 64; p += 64, len -= 64) {
    __m256i v = _mm256_loadu_si256((const __m256i *)p), w = _mm256_loadu_si256((const __m256i *)(p + 32));
    a = _mm256_add_epi64(a, _mm256_unpacklo_epi32(v, z));
    b = _mm256_add_epi64(b, _mm256_unpackhi_epi32(v, z));
    a = _mm256_add_epi64(a, _mm256_unpacklo_epi32(w, z));
    b = _mm256_add_epi64(b, _mm256_unpackhi_epi32(w, z));
  }
  uint64_t t[4];
  _mm256_storeu_si256((__m256i *)t, _mm256_add_epi64(a, b));
  return t[0] + t[1] + t[2] + t[3];
}

uint64_t csum_words(const uint8_t *p, size_t len) {
  static int avx2 = -1; /* decided once; a race only decides it twice, the same way */
  if (avx2 < 0) {
    __builtin_cpu_init();
    avx2 = __builtin_cpu_supports("avx2") ? 1 : 0;
  }
  return avx2 ? words_avx2(p, len) : words_scalar(p, len);
}
#else
uint64_t csum_words(const uint8_t *p, size_t len) { return words_scalar(p, len); }
#endif
