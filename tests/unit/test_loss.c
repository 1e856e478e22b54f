/*
 * test_loss.c — the losses against brute-force references and finite
 * differences, and the collapse figure at its two ends.
 *
 * Dimension legend: B rows, D projection dimension.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "byol/loss.h"
#include "byol/rng.h"

static void fill_normal(float *x, long n, uint64_t seed)
{
	rng_stream s;
	rng_stream_init(&s, seed, 0, 0, 0);
	for (long i = 0; i < n; i++)
		x[i] = rng_normal(&s);
}

/* ---------------------------------------------------------- references */

static double ref_cos(const float *a, const float *b, int D)
{
	double ab = 0, aa = 0, bb = 0;
	for (int d = 0; d < D; d++) {
		ab += (double)a[d] * b[d];
		aa += (double)a[d] * a[d];
		bb += (double)b[d] * b[d];
	}
	return ab / (sqrt(aa) * sqrt(bb));
}

/* NT-Xent written out from its definition, in double. */
static double ref_ntxent(const float *z1, const float *z2, int B, int D, double t)
{
	int N = 2 * B;
	double total = 0;
	for (int a = 0; a < N; a++) {
		const float *za = a < B ? z1 + a * D : z2 + (a - B) * D;
		int pos = a < B ? a + B : a - B;
		double sum = 0, spos = 0;
		for (int j = 0; j < N; j++) {
			if (j == a)
				continue;
			const float *zj = j < B ? z1 + j * D : z2 + (j - B) * D;
			double s = ref_cos(za, zj, D) / t;
			sum += exp(s);
			if (j == pos)
				spos = s;
		}
		total += log(sum) - spos;
	}
	return total;
}

/* ---------------------------------------------------- finite differences */

/* A loss of a set of inputs, the inputs being perturbed by the checker. */
typedef double (*loss_fn)(void *ctx);

/* Central differences of f with respect to every entry of x (n), against the
 * analytic gradient g (n). Returns the largest |fd - g| / (tol_abs + tol_rel|fd|),
 * i.e. > 1 means the check failed. */
static double fd_check(loss_fn f, void *ctx, float *x, const float *g, long n)
{
	const float h = 1e-2f;
	double worst = 0;
	for (long i = 0; i < n; i++) {
		float x0 = x[i];
		x[i] = x0 + h;
		float up = x[i];
		double lu = f(ctx);
		x[i] = x0 - h;
		float dn = x[i];
		double ld = f(ctx);
		x[i] = x0;
		double fd = (lu - ld) / ((double)up - dn);
		double e = fabs(fd - g[i]) / (2e-4 + 2e-3 * fabs(fd));
		if (e > worst)
			worst = e;
	}
	return worst;
}

typedef struct {
	float *p, *z, *z2;
	float *scratch;
	int B, D;
	float t;
} loss_ctx;

static double cosine_of(void *v)
{
	loss_ctx *c = v;
	return loss_cosine(NULL, c->p, c->z, c->B, c->D);
}

static double ntxent_of(void *v)
{
	loss_ctx *c = v;
	return loss_ntxent(NULL, NULL, c->p, c->z, c->B, c->D, c->t, c->scratch);
}

/* ---------------------------------------------------------------- tests */

static void test_cosine_values(void **state)
{
	(void)state;
	enum { B = 3, D = 4 };
	float z[B * D] = { 1, 2, 3, 4, -1, 0.5f, 2, 0, 3, 3, -3, 1 };
	float p[B * D];
	/* row 0: p = 2 z (loss 0); row 1: p = -z (loss 4); row 2: orthogonal (2). */
	for (int d = 0; d < D; d++) {
		p[d] = 2 * z[d];
		p[D + d] = -z[D + d];
	}
	float orth[D] = { 1, -1, 0, 0 };
	memcpy(p + 2 * D, orth, sizeof(orth));
	double l = loss_cosine(NULL, p, z, B, D);
	assert_true(fabs(l - 6.0) < 1e-6);
	double l0 = loss_cosine(NULL, p, z, 1, D);
	assert_true(fabs(l0) < 1e-6);
}

static void test_cosine_gradient(void **state)
{
	(void)state;
	enum { B = 5, D = 16 };
	float p[B * D], z[B * D], dp[B * D];
	fill_normal(p, B * D, 1);
	fill_normal(z, B * D, 2);
	memset(dp, 0, sizeof(dp));
	double l = loss_cosine(dp, p, z, B, D);
	double ref = 0;
	for (int i = 0; i < B; i++)
		ref += 2 - 2 * ref_cos(p + i * D, z + i * D, D);
	assert_true(fabs(l - ref) < 1e-9 * B);

	loss_ctx c = { .p = p, .z = z, .B = B, .D = D };
	double e = fd_check(cosine_of, &c, p, dp, B * D);
	print_message("cosine: worst fd error %.3f of tolerance\n", e);
	assert_true(e < 1.0);

	/* A gradient that is wrong in one entry by 1% of the largest fails. */
	float big = 0;
	for (int i = 0; i < B * D; i++)
		big = fmaxf(big, fabsf(dp[i]));
	dp[B * D / 2 + 3] += 0.01f * big;
	assert_true(fd_check(cosine_of, &c, p, dp, B * D) > 1.0);
}

static void test_cosine_accumulates(void **state)
{
	(void)state;
	enum { B = 2, D = 8 };
	float p[B * D], z[B * D], g0[B * D], g1[B * D];
	fill_normal(p, B * D, 3);
	fill_normal(z, B * D, 4);
	memset(g0, 0, sizeof(g0));
	loss_cosine(g0, p, z, B, D);
	for (int i = 0; i < B * D; i++)
		g1[i] = 1.0f;
	loss_cosine(g1, p, z, B, D);
	for (int i = 0; i < B * D; i++)
		assert_true(fabsf(g1[i] - (1.0f + g0[i])) < 1e-6f);
}

static void test_cosine_zero_row(void **state)
{
	(void)state;
	enum { B = 2, D = 8 };
	float p[B * D], z[B * D], dp[B * D];
	fill_normal(p, B * D, 5);
	fill_normal(z, B * D, 6);
	memset(p, 0, D * sizeof(float)); /* row 0 of p is zero */
	memset(z + D, 0, D * sizeof(float)); /* row 1 of z is zero */
	memset(dp, 0, sizeof(dp));
	double l = loss_cosine(dp, p, z, B, D);
	assert_true(isfinite(l));
	assert_true(fabs(l - 4.0) < 1e-9); /* both rows have cosine 0 */
	for (int i = 0; i < B * D; i++)
		assert_true(isfinite(dp[i]));
	/* The row with z = 0 has no pull at all. */
	for (int d = 0; d < D; d++)
		assert_true(dp[D + d] == 0.0f);
}

static void test_ntxent_value(void **state)
{
	(void)state;
	enum { B = 6, D = 10 };
	float z1[B * D], z2[B * D];
	fill_normal(z1, B * D, 7);
	fill_normal(z2, B * D, 8);
	float *scratch = malloc((size_t)loss_ntxent_scratch(B, D) * sizeof(float));
	assert_non_null(scratch);
	for (int k = 0; k < 3; k++) {
		float t = (float[]){ 0.1f, 0.5f, 2.0f }[k];
		double l = loss_ntxent(NULL, NULL, z1, z2, B, D, t, scratch);
		double ref = ref_ntxent(z1, z2, B, D, t);
		print_message("ntxent t=%.1f: %.6f (reference %.6f)\n", t, l, ref);
		assert_true(fabs(l - ref) < 1e-4 * fabs(ref));
	}
	/* One sample: each anchor's only other projection is its positive. */
	assert_true(fabs(loss_ntxent(NULL, NULL, z1, z2, 1, D, 0.5f, scratch)) < 1e-6);
	free(scratch);
}

static void test_ntxent_gradient(void **state)
{
	(void)state;
	enum { B = 4, D = 12 };
	float z1[B * D], z2[B * D], d1[B * D], d2[B * D];
	fill_normal(z1, B * D, 9);
	fill_normal(z2, B * D, 10);
	/* Make the positives correlated so that the loss is not at a flat spot. */
	for (int i = 0; i < B * D; i++)
		z2[i] = 0.7f * z1[i] + 0.5f * z2[i];
	float *scratch = malloc((size_t)loss_ntxent_scratch(B, D) * sizeof(float));
	assert_non_null(scratch);
	const float t = 0.5f;
	memset(d1, 0, sizeof(d1));
	memset(d2, 0, sizeof(d2));
	double l = loss_ntxent(d1, d2, z1, z2, B, D, t, scratch);
	assert_true(fabs(l - ref_ntxent(z1, z2, B, D, t)) < 1e-4 * fabs(l));

	loss_ctx c = { .p = z1, .z = z2, .scratch = scratch, .B = B, .D = D, .t = t };
	double e1 = fd_check(ntxent_of, &c, z1, d1, B * D);
	double e2 = fd_check(ntxent_of, &c, z2, d2, B * D);
	print_message("ntxent: worst fd error %.3f, %.3f of tolerance\n", e1, e2);
	assert_true(e1 < 1.0);
	assert_true(e2 < 1.0);

	/* Only dz2 asked for: the same dz2, and dz1 untouched. */
	float d2b[B * D];
	memset(d2b, 0, sizeof(d2b));
	loss_ntxent(NULL, d2b, z1, z2, B, D, t, scratch);
	assert_memory_equal(d2, d2b, sizeof(d2));

	float big = 0;
	for (int i = 0; i < B * D; i++)
		big = fmaxf(big, fabsf(d2[i]));
	d2[7] -= 0.01f * big;
	assert_true(fd_check(ntxent_of, &c, z2, d2, B * D) > 1.0);
	free(scratch);
}

static void test_ntxent_stable(void **state)
{
	(void)state;
	/* A tiny temperature: similarities / t around 1e3 must not overflow. */
	enum { B = 3, D = 4 };
	float z1[B * D], z2[B * D], d1[B * D], d2[B * D];
	fill_normal(z1, B * D, 11);
	fill_normal(z2, B * D, 12);
	float *scratch = malloc((size_t)loss_ntxent_scratch(B, D) * sizeof(float));
	assert_non_null(scratch);
	memset(d1, 0, sizeof(d1));
	memset(d2, 0, sizeof(d2));
	double l = loss_ntxent(d1, d2, z1, z2, B, D, 1e-3f, scratch);
	assert_true(isfinite(l) && l >= 0);
	for (int i = 0; i < B * D; i++)
		assert_true(isfinite(d1[i]) && isfinite(d2[i]));
	free(scratch);
}

static void test_collapse(void **state)
{
	(void)state;
	enum { B = 512, D = 256 };
	float *z = malloc((size_t)B * D * sizeof(float));
	assert_non_null(z);
	fill_normal(z, (long)B * D, 13);
	double healthy = loss_collapse(z, B, D);
	print_message("collapse figure of gaussian rows: %.4f\n", healthy);
	assert_true(healthy > 0.95 && healthy < 1.05);

	/* Every row the same direction (different lengths): 0. */
	for (int i = 1; i < B; i++)
		for (int d = 0; d < D; d++)
			z[(size_t)i * D + d] = (float)(1 + i % 3) * z[d];
	assert_true(loss_collapse(z, B, D) < 1e-6);

	/* Rows +-e0: one dimension of std ~1, D - 1 of 0: about 1/sqrt(D). */
	memset(z, 0, (size_t)B * D * sizeof(float));
	for (int i = 0; i < B; i++)
		z[(size_t)i * D] = i % 2 ? 1.0f : -1.0f;
	double one = loss_collapse(z, B, D);
	assert_true(fabs(one - 1.0 / sqrt(D)) < 0.01 / sqrt(D));
	free(z);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cosine_values),
		cmocka_unit_test(test_cosine_gradient),
		cmocka_unit_test(test_cosine_accumulates),
		cmocka_unit_test(test_cosine_zero_row),
		cmocka_unit_test(test_ntxent_value),
		cmocka_unit_test(test_ntxent_gradient),
		cmocka_unit_test(test_ntxent_stable),
		cmocka_unit_test(test_collapse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
