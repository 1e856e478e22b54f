/*
 * rng.h — counter-based random numbers (Philox4x32-10, Salmon et al. 2011).
 *
 * Every random draw in byold is a pure function of (seed, a, b, c, draw number):
 * there is no hidden state that depends on the order in which work is done, so the
 * same image gets the same augmentation in any process, on any worker, in any
 * order. By convention a = epoch, b = image index, c = purpose/view (see the
 * RNG_* constants); the fourth counter word numbers the 128-bit blocks drawn.
 *
 * A stream keyed by seed is the sequence of 32-bit words
 *   philox((a, b, c, 0), key)[0..3], philox((a, b, c, 1), key)[0..3], ...
 * with key = (seed & 0xffffffff, seed >> 32). Each function below says how many
 * words it takes, so that a consumer can fix its layout of draws. The block
 * function is Random123's philox4x32 with 10 rounds, bit for bit (checked against
 * its known-answer vectors in tests/unit/test_rng.c).
 */
#ifndef BYOL_RNG_H
#define BYOL_RNG_H

#include <stdint.h>

/* Purposes, the `c` word, so that streams for different uses never overlap. */
enum {
	RNG_VIEW0 = 0,          /* augmentation of view 0 */
	RNG_VIEW1 = 1,          /* augmentation of view 1 */
	RNG_PERMUTE = 0x100,    /* the per-epoch permutation of the train set */
	RNG_INIT = 0x200,       /* parameter initialisation (b = tensor index) */
	RNG_EVAL = 0x300,       /* evaluation (probe init, shuffles) */
};

/* One Philox4x32-10 block: out = philox(ctr, key). out may not alias ctr. */
void rng_philox4x32(uint32_t out[4], const uint32_t ctr[4], const uint32_t key[2]);

typedef struct {
	uint32_t key[2];
	uint32_t ctr[4];
	uint32_t buf[4];
	int pos;                /* next unused word of buf; 4 = empty */
} rng_stream;

/* Starts the stream keyed by seed at counter (a, b, c, 0). The struct is plain
 * data: copying it forks the stream. */
void rng_stream_init(rng_stream *s, uint64_t seed, uint32_t a, uint32_t b, uint32_t c);

/* The next word of the stream. */
uint32_t rng_u32(rng_stream *s);
/* Uniform in [0, 1): the top 24 bits of one word times 2^-24 (exact in a float). */
float rng_uniform(rng_stream *s);
/* Uniform in [lo, hi): lo + (hi - lo) * rng_uniform, kept below hi when rounding
 * would reach it. One word, always; returns lo (still taking the word) when
 * hi <= lo. */
float rng_range(rng_stream *s, float lo, float hi);
/* Standard normal from two words w1, w2 (Box-Muller in double, rounded to float):
 * sqrt(-2 ln u1) cos(2 pi u2) with u1 = (w1 + 1) / 2^32 in (0, 1], u2 = w2 / 2^32.
 * The sine partner is not kept, so every call takes exactly two words. */
float rng_normal(rng_stream *s);
/* Uniform integer in [0, n), unbiased: words below 2^32 mod n are rejected and
 * the rest reduced mod n, so it takes one word, occasionally more (at worst, n
 * just over 2^31, two on average). n <= 1 returns 0 and takes none. */
uint32_t rng_below(rng_stream *s, uint32_t n);

/* The permutation of [0, n) used for `epoch` of a run with `seed` (Fisher-Yates
 * driven by the stream (seed, epoch, 0, RNG_PERMUTE)): perm = identity, then for
 * i = n-1 down to 1 swap perm[i] and perm[rng_below(i + 1)]. perm has n entries;
 * the caller owns it. About 0.7 ms for n = 60000 on this machine class. */
void rng_permutation(uint32_t *perm, uint32_t n, uint64_t seed, uint32_t epoch);

#endif
