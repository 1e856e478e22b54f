/*
 * test_rng.c — Philox4x32-10 known answers, the stream, the distributions and the
 * per-epoch permutation.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "byol/rng.h"

/* Random123's kat_vectors for philox4x32 with 10 rounds. */
static void test_philox_known_answers(void **state)
{
	static const struct {
		uint32_t ctr[4], key[2], out[4];
	} kat[] = {
		{ { 0, 0, 0, 0 }, { 0, 0 },
		  { 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8 } },
		{ { 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff }, { 0xffffffff, 0xffffffff },
		  { 0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd } },
		{ { 0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344 }, { 0xa4093822, 0x299f31d0 },
		  { 0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1 } },
	};
	for (size_t i = 0; i < sizeof(kat) / sizeof(kat[0]); i++) {
		uint32_t out[4];
		rng_philox4x32(out, kat[i].ctr, kat[i].key);
		for (int j = 0; j < 4; j++)
			assert_int_equal(out[j], kat[i].out[j]);
	}
}

/* The stream is the blocks philox((a, b, c, 0..), (seed lo, seed hi)) word by word. */
static void test_stream_layout(void **state)
{
	uint64_t seed = 0x0123456789abcdefull;
	rng_stream s;
	rng_stream_init(&s, seed, 7, 11, RNG_VIEW1);
	uint32_t key[2] = { 0x89abcdef, 0x01234567 };
	for (uint32_t blk = 0; blk < 3; blk++) {
		uint32_t ctr[4] = { 7, 11, RNG_VIEW1, blk }, out[4];
		rng_philox4x32(out, ctr, key);
		for (int j = 0; j < 4; j++)
			assert_int_equal(rng_u32(&s), out[j]);
	}
	/* Re-initialising restarts the stream; another purpose gives another one. */
	rng_stream t, u;
	rng_stream_init(&t, seed, 7, 11, RNG_VIEW1);
	rng_stream_init(&u, seed, 7, 11, RNG_VIEW0);
	uint32_t key0[2] = { 0x89abcdef, 0x01234567 }, ctr0[4] = { 7, 11, RNG_VIEW1, 0 }, o[4];
	rng_philox4x32(o, ctr0, key0);
	assert_int_equal(rng_u32(&t), o[0]);
	assert_int_not_equal(rng_u32(&u), o[0]);
}

#define NDRAW 1000000

static void test_uniform_moments(void **state)
{
	rng_stream s;
	rng_stream_init(&s, 42, 0, 0, 0);
	double sum = 0, sum2 = 0;
	float lo = 1, hi = 0;
	for (int i = 0; i < NDRAW; i++) {
		float u = rng_uniform(&s);
		assert_true(u >= 0.0f && u < 1.0f);
		lo = u < lo ? u : lo;
		hi = u > hi ? u : hi;
		sum += u;
		sum2 += (double)u * u;
	}
	double mean = sum / NDRAW, var = sum2 / NDRAW - mean * mean;
	/* sd of the mean is 0.29 / 1000; of the variance about 0.075 / 1000. */
	assert_true(fabs(mean - 0.5) < 0.0015);
	assert_true(fabs(var - 1.0 / 12) < 0.0005);
	assert_true(lo < 1e-4f && hi > 1 - 1e-4f);
}

static void test_range(void **state)
{
	rng_stream s;
	rng_stream_init(&s, 3, 1, 2, 3);
	double sum = 0;
	for (int i = 0; i < 100000; i++) {
		float r = rng_range(&s, -2.5f, 4.0f);
		assert_true(r >= -2.5f && r < 4.0f);
		sum += r;
	}
	assert_true(fabs(sum / 100000 - 0.75) < 0.03);
	/* A degenerate interval gives its one value and still consumes a draw. */
	rng_stream a, b;
	rng_stream_init(&a, 3, 1, 2, 3);
	rng_stream_init(&b, 3, 1, 2, 3);
	assert_true(rng_range(&a, 1.0f, 1.0f) == 1.0f);
	rng_u32(&b);
	assert_int_equal(rng_u32(&a), rng_u32(&b));
	/* A tiny interval around a large value stays half-open. */
	for (int i = 0; i < 1000; i++) {
		float r = rng_range(&s, 1000.0f, nextafterf(1000.0f, 2000.0f));
		assert_true(r == 1000.0f);
	}
}

static void test_normal_moments(void **state)
{
	rng_stream s;
	rng_stream_init(&s, 1234, 5, 6, 7);
	double m1 = 0, m2 = 0, m3 = 0, m4 = 0;
	for (int i = 0; i < NDRAW; i++) {
		double z = rng_normal(&s);
		assert_true(isfinite(z));
		m1 += z;
		m2 += z * z;
		m3 += z * z * z;
		m4 += z * z * z * z;
	}
	m1 /= NDRAW;
	m2 /= NDRAW;
	m3 /= NDRAW;
	m4 /= NDRAW;
	/* sds: mean 0.001, E z^2 0.0014, E z^3 0.004, E z^4 0.01 */
	assert_true(fabs(m1) < 0.005);
	assert_true(fabs(m2 - 1) < 0.007);
	assert_true(fabs(m3) < 0.02);
	assert_true(fabs(m4 - 3) < 0.05);
}

static void test_below_small(void **state)
{
	rng_stream s;
	rng_stream_init(&s, 9, 0, 0, 0);
	for (int i = 0; i < 100; i++) {
		assert_int_equal(rng_below(&s, 1), 0);
		assert_int_equal(rng_below(&s, 0), 0);
	}
	enum { N = 10, DRAWS = 200000 };
	int count[N] = { 0 };
	for (int i = 0; i < DRAWS; i++) {
		uint32_t r = rng_below(&s, N);
		assert_true(r < N);
		count[r]++;
	}
	double chi2 = 0, e = (double)DRAWS / N;
	for (int k = 0; k < N; k++)
		chi2 += (count[k] - e) * (count[k] - e) / e;
	/* 9 degrees of freedom: P(chi2 > 33.7) = 1e-4. */
	assert_true(chi2 < 33.7);
}

/* n = 3 * 2^30: plain `r % n` would put half of all draws below 2^30 instead of
 * a third; the rejection keeps it at a third. */
static void test_below_unbiased_large(void **state)
{
	rng_stream s;
	rng_stream_init(&s, 10, 0, 0, 0);
	const uint32_t n = 0xC0000000u;
	int low = 0, draws = 100000;
	for (int i = 0; i < draws; i++) {
		uint32_t r = rng_below(&s, n);
		assert_true(r < n);
		low += r < 0x40000000u;
	}
	assert_true(fabs((double)low / draws - 1.0 / 3) < 0.01);
}

static int is_permutation(const uint32_t *p, uint32_t n)
{
	char *seen = calloc(n ? n : 1, 1);
	int ok = 1;
	for (uint32_t i = 0; i < n && ok; i++) {
		if (p[i] >= n || seen[p[i]])
			ok = 0;
		else
			seen[p[i]] = 1;
	}
	free(seen);
	return ok;
}

static uint32_t count_moved(const uint32_t *a, const uint32_t *b, uint32_t n)
{
	uint32_t d = 0;
	for (uint32_t i = 0; i < n; i++)
		d += a[i] != b[i];
	return d;
}

static void test_permutation(void **state)
{
	enum { N = 60000 };
	uint32_t *p = malloc(N * sizeof(*p)), *q = malloc(N * sizeof(*q));
	assert_non_null(p);
	assert_non_null(q);

	rng_permutation(p, N, 1, 0);
	assert_true(is_permutation(p, N));
	/* Recomputing gives the same one, and it is not the identity. */
	rng_permutation(q, N, 1, 0);
	assert_memory_equal(p, q, N * sizeof(*p));
	for (uint32_t i = 0; i < N; i++)
		q[i] = i;
	assert_true(count_moved(p, q, N) > N - 10);

	/* Another epoch, another seed: other permutations (almost every slot moves). */
	rng_permutation(q, N, 1, 1);
	assert_true(is_permutation(q, N));
	assert_true(count_moved(p, q, N) > N - 10);
	rng_permutation(q, N, 2, 0);
	assert_true(is_permutation(q, N));
	assert_true(count_moved(p, q, N) > N - 10);
	/* Seeds differing only in the high word differ too. */
	rng_permutation(q, N, 1 | (1ull << 32), 0);
	assert_true(count_moved(p, q, N) > N - 10);

	/* Edge sizes. */
	p[0] = 77;
	rng_permutation(p, 0, 1, 0);
	assert_int_equal(p[0], 77);
	rng_permutation(p, 1, 1, 0);
	assert_int_equal(p[0], 0);
	free(p);
	free(q);
}

/* All 6 orders of 3 elements equally likely over epochs (an off-by-one in the
 * Fisher-Yates bound would make some impossible or twice as likely). */
static void test_permutation_uniform(void **state)
{
	enum { EPOCHS = 60000 };
	int count[3][3][3] = { { { 0 } } };
	for (uint32_t e = 0; e < EPOCHS; e++) {
		uint32_t p[3];
		rng_permutation(p, 3, 5, e);
		assert_true(is_permutation(p, 3));
		count[p[0]][p[1]][p[2]]++;
	}
	int seen = 0;
	double chi2 = 0, ex = EPOCHS / 6.0;
	for (int a = 0; a < 3; a++)
		for (int b = 0; b < 3; b++)
			for (int c = 0; c < 3; c++) {
				if (!count[a][b][c])
					continue;
				seen++;
				chi2 += (count[a][b][c] - ex) * (count[a][b][c] - ex) / ex;
			}
	assert_int_equal(seen, 6);
	/* 5 degrees of freedom: P(chi2 > 25.7) = 1e-4. */
	assert_true(chi2 < 25.7);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_philox_known_answers),
		cmocka_unit_test(test_stream_layout),
		cmocka_unit_test(test_uniform_moments),
		cmocka_unit_test(test_range),
		cmocka_unit_test(test_normal_moments),
		cmocka_unit_test(test_below_small),
		cmocka_unit_test(test_below_unbiased_large),
		cmocka_unit_test(test_permutation),
		cmocka_unit_test(test_permutation_uniform),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
