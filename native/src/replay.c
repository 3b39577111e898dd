/* Anti-replay windows (see replay.h). */
#include "replay.h"

#include <string.h>

void replay_init(replay_window *w, uint32_t size) {
  memset(w, 0, sizeof *w);
  w->size = size;
}

int replay_check(const replay_window *w, uint64_t seq) {
  if (seq > w->top) return 1;
  if (w->top - seq >= w->size) return 0;
  uint64_t bit = seq % REPLAY_WINDOW_MAX;
  return !(w->bits[bit / 64] >> (bit % 64) & 1);
}

void replay_accept(replay_window *w, uint64_t seq) {
  if (seq > w->top) {
    if (seq - w->top >= REPLAY_WINDOW_MAX) {
      memset(w->bits, 0, sizeof w->bits);
    } else {
      /* Clear the slots of the numbers skipped over (they were last used a whole array ago), a word
       * at a time where a whole word is skipped. */
      for (uint64_t q = w->top + 1; q < seq;) {
        uint64_t b = q % REPLAY_WINDOW_MAX;
        if (b % 64 == 0 && seq - q >= 64) {
          w->bits[b / 64] = 0;
          q += 64;
        } else {
          w->bits[b / 64] &= ~((uint64_t)1 << (b % 64));
          q++;
        }
      }
    }
    w->top = seq;
  } else if (w->top - seq >= w->size) {
    return;
  }
  uint64_t bit = seq % REPLAY_WINDOW_MAX;
  w->bits[bit / 64] |= (uint64_t)1 << (bit % 64);
}

/* Slots of numbers above the new top are set too: replay_accept clears the ones it skips over. */
void replay_raise_floor(replay_window *w, uint64_t floor) {
  if (floor < 2 || floor - 1 <= w->top) return;
  w->top = floor - 1;
  memset(w->bits, 0xff, sizeof w->bits);
}
