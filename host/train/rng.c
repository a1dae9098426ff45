/* SplitMix64 + xoshiro256** (public-domain algorithms by Vigna), written for kdcl. */
#include "train/rng.h"

static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

void kd_rng_seed(kd_rng *r, uint64_t seed, uint64_t stream) {
  uint64_t x = seed ^ (stream * 0xD1B54A32D192ED03ull);
  for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t kd_rng_next(kd_rng *r) {
  uint64_t *s = r->s;
  uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

double kd_rng_uniform(kd_rng *r) { return (double)(kd_rng_next(r) >> 11) * 0x1.0p-53; }

uint64_t kd_rng_below(kd_rng *r, uint64_t n) {
  uint64_t limit = UINT64_MAX - UINT64_MAX % n, x;
  do x = kd_rng_next(r);
  while (x >= limit);
  return x % n;
}

void kd_epoch_order(int64_t *order, int64_t n, uint64_t seed, int64_t epoch, int shuffle) {
  for (int64_t i = 0; i < n; i++) order[i] = i;
  if (!shuffle) return;
  kd_rng r;
  kd_rng_seed(&r, seed, 0x5348554646ull + (uint64_t)epoch); /* "SHUFF" + epoch */
  for (int64_t i = n - 1; i > 0; i--) {
    int64_t j = (int64_t)kd_rng_below(&r, (uint64_t)i + 1);
    int64_t t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
}
