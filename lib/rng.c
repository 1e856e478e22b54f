/*
 * rng.c — Philox4x32-10 and the streams built on it.
 *
 * The block function follows Random123 (Salmon, Moraes, Dror, Shaw, "Parallel random
 * numbers: as easy as 1, 2, 3", SC 2011) exactly and is checked against its
 * known-answer vectors in tests/unit/test_rng.c.
 */
#include "byol/rng.h"

#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u   /* golden ratio */
#define PHILOX_W1 0xBB67AE85u   /* sqrt(3) - 1 */

static inline void philox_round(uint32_t x[4], const uint32_t k[2])
{
	uint64_t p0 = (uint64_t)PHILOX_M0 * x[0];
	uint64_t p1 = (uint64_t)PHILOX_M1 * x[2];
	uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
	uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
	uint32_t y0 = hi1 ^ x[1] ^ k[0];
	uint32_t y2 = hi0 ^ x[3] ^ k[1];
	x[0] = y0;
	x[1] = lo1;
	x[2] = y2;
	x[3] = lo0;
}

void rng_philox4x32(uint32_t out[4], const uint32_t ctr[4], const uint32_t key[2])
{
	uint32_t x[4] = { ctr[0], ctr[1], ctr[2], ctr[3] };
	uint32_t k[2] = { key[0], key[1] };
	for (int r = 0; r < 10; r++) {
		if (r > 0) {
			k[0] += PHILOX_W0;
			k[1] += PHILOX_W1;
		}
		philox_round(x, k);
	}
	out[0] = x[0];
	out[1] = x[1];
	out[2] = x[2];
	out[3] = x[3];
}

void rng_stream_init(rng_stream *s, uint64_t seed, uint32_t a, uint32_t b, uint32_t c)
{
	s->key[0] = (uint32_t)seed;
	s->key[1] = (uint32_t)(seed >> 32);
	s->ctr[0] = a;
	s->ctr[1] = b;
	s->ctr[2] = c;
	s->ctr[3] = 0;
	s->buf[0] = s->buf[1] = s->buf[2] = s->buf[3] = 0;
	s->pos = 4;
}

uint32_t rng_u32(rng_stream *s)
{
	if (s->pos >= 4) {
		rng_philox4x32(s->buf, s->ctr, s->key);
		s->ctr[3]++;
		s->pos = 0;
	}
	return s->buf[s->pos++];
}

float rng_uniform(rng_stream *s)
{
	/* The top 24 bits: every value k * 2^-24 is exact in a float. */
	return (float)(rng_u32(s) >> 8) * (1.0f / 16777216.0f);
}

float rng_range(rng_stream *s, float lo, float hi)
{
	float u = rng_uniform(s);
	if (!(hi > lo))
		return lo;
	float r = lo + (hi - lo) * u;
	/* Rounding can land on hi; keep the interval half-open. */
	if (r >= hi)
		r = nextafterf(hi, lo);
	return r;
}

float rng_normal(rng_stream *s)
{
	/* u1 in (0, 1] so that log(u1) is finite; u2 in [0, 1). Two draws, always. */
	double u1 = ((double)rng_u32(s) + 1.0) * (1.0 / 4294967296.0);
	double u2 = (double)rng_u32(s) * (1.0 / 4294967296.0);
	double z = sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
	return (float)z;
}

uint32_t rng_below(rng_stream *s, uint32_t n)
{
	if (n <= 1)
		return 0;
	/* Reject the lowest (2^32 mod n) values so that every residue is equally
	 * likely; at worst (n just above 2^31) half the draws are rejected. */
	uint32_t threshold = (uint32_t)(-n) % n;
	for (;;) {
		uint32_t r = rng_u32(s);
		if (r >= threshold)
			return r % n;
	}
}

void rng_permutation(uint32_t *perm, uint32_t n, uint64_t seed, uint32_t epoch)
{
	for (uint32_t i = 0; i < n; i++)
		perm[i] = i;
	if (n < 2)
		return;
	rng_stream s;
	rng_stream_init(&s, seed, epoch, 0, RNG_PERMUTE);
	for (uint32_t i = n - 1; i > 0; i--) {
		uint32_t j = rng_below(&s, i + 1);
		uint32_t t = perm[i];
		perm[i] = perm[j];
		perm[j] = t;
	}
}
