/* Host-side random numbers: SplitMix64 for seeding and a xoshiro256** stream, used for
 * parameter initialisation and per-epoch shuffles. Every stream is a pure function of
 * (seed, purpose, epoch), so a resumed run reproduces the same order without saved state. */
#ifndef KD_RNG_H
#define KD_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct kd_rng {
  uint64_t s[4];
} kd_rng;

/* Seeds a stream from (seed, stream id). */
void kd_rng_seed(kd_rng *r, uint64_t seed, uint64_t stream);
uint64_t kd_rng_next(kd_rng *r);
/* Uniform double in [0, 1). */
double kd_rng_uniform(kd_rng *r);
/* Uniform integer in [0, n), unbiased. */
uint64_t kd_rng_below(kd_rng *r, uint64_t n);

/* The order of rows for one epoch: a Fisher-Yates shuffle of 0..n-1 drawn from
 * (seed, epoch), or the identity when shuffle is 0. */
void kd_epoch_order(int64_t *order, int64_t n, uint64_t seed, int64_t epoch, int shuffle);

#endif
