/*
 * test_nn_norm.c — the normalisations of nn.h: batch norm, group norm and weight
 * standardisation, with finite-difference proofs of every backward pass (and
 * that the same measure flags a gradient with one term of the formula left
 * out), accumulation and NULL-gradient semantics, and forward passes against
 * naive double-precision references.
 *
 * Dimension legend: as in include/byol/nn.h. The gradient check and its error
 * measure: tests/unit/nn_check.h.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "byol/nn.h"
#include "nn_check.h"

/* ---- normalisation: a double reference for group norm (batch norm is one
 * sample with S = N and G = C) ---- */

/* Statistics in double: mean, var (B, G). */
static void ref_stats(double *mean, double *var, const float *x, int B, int S, int C,
		      int G)
{
	const int CG = C / G;
	for (int b = 0; b < B; b++)
		for (int g = 0; g < G; g++) {
			double s = 0.0, q = 0.0;
			for (int i = 0; i < S; i++)
				for (int k = 0; k < CG; k++)
					s += x[((long)b * S + i) * C + g * CG + k];
			s /= (double)S * CG;
			for (int i = 0; i < S; i++)
				for (int k = 0; k < CG; k++) {
					double d =
					    x[((long)b * S + i) * C + g * CG + k] - s;
					q += d * d;
				}
			mean[b * G + g] = s;
			var[b * G + g] = q / ((double)S * CG);
		}
}

enum { DROP_MEAN = 1, DROP_XHAT = 2 };

/* dinp (B, S, C) of sum(out * P) in double, optionally with a term of
 * dx = r * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)) left out. */
static void ref_norm_dinp(double *dx, const float *x, const float *P, const float *gamma,
			  int B, int S, int C, int G, int drop)
{
	const int CG = C / G;
	double *mean = da((long)B * G), *var = da((long)B * G);
	ref_stats(mean, var, x, B, S, C, G);
	for (int b = 0; b < B; b++)
		for (int g = 0; g < G; g++) {
			const double m = mean[b * G + g],
				     r = 1.0 / sqrt(var[b * G + g] + NN_EPS);
			double sa = 0.0, sb = 0.0;
			for (int i = 0; i < S; i++)
				for (int k = 0; k < CG; k++) {
					long j = ((long)b * S + i) * C + g * CG + k;
					double dxh = (double)P[j] * gamma[g * CG + k];
					sa += dxh;
					sb += dxh * (x[j] - m) * r;
				}
			sa /= (double)S * CG;
			sb /= (double)S * CG;
			for (int i = 0; i < S; i++)
				for (int k = 0; k < CG; k++) {
					long j = ((long)b * S + i) * C + g * CG + k;
					double xh = (x[j] - m) * r;
					double v = (double)P[j] * gamma[g * CG + k];
					if (!(drop & DROP_MEAN))
						v -= sa;
					if (!(drop & DROP_XHAT))
						v -= xh * sb;
					dx[j] = r * v;
				}
		}
}

/* The numerical gradient num (B*S*C) matches the reference, and the reference
 * with a term left out is rejected by the same measure. */
static void check_missing_terms(const char *what, const double *num, const float *x,
				const float *P, const float *gamma, int B, int S, int C,
				int G)
{
	const long n = (long)B * S * C;
	double *ref = da(n);
	ref_norm_dinp(ref, x, P, gamma, B, S, C, G, 0);
	double e = grad_err_d(ref, num, n);
	if (!(e < TOL))
		fail_msg("%s: double reference disagrees with finite differences: %.3g",
			 what, e);
	for (int drop = DROP_MEAN; drop <= DROP_XHAT; drop++) {
		ref_norm_dinp(ref, x, P, gamma, B, S, C, G, drop);
		e = grad_err_d(ref, num, n);
		if (getenv("NN_DEBUG"))
			printf("%s without term %d: error %.3g\n", what, drop, e);
		if (!(e > 10 * TOL))
			fail_msg("%s: a gradient without term %d passes (error %.3g)",
				 what, drop, e);
	}
}

/* An input (B, S, C) for a norm with G groups: per-channel scales and offsets,
 * each group redrawn until its variance is at least 0.1, so that a step of
 * 1e-2 stays small against the spread of every group. */
static float *norm_input(int B, int S, int C, int G)
{
	const int CG = C / G;
	float *x = fa((long)B * S * C);
	for (int b = 0; b < B; b++)
		for (int g = 0; g < G; g++) {
			double var;
			do {
				double s = 0.0, q = 0.0;
				for (int i = 0; i < S; i++)
					for (int k = g * CG; k < (g + 1) * CG; k++) {
						float v =
						    gauss() * (0.5f + 0.1f * (k % 7)) +
						    0.3f * (k % 5);
						x[((long)b * S + i) * C + k] = v;
						s += v;
						q += (double)v * v;
					}
				s /= (double)S * CG;
				var = q / ((double)S * CG) - s * s;
			} while (var < 0.1);
		}
	return x;
}

/* ---- batch norm ---- */

typedef struct {
	int N, C;
	float *inp, *gamma, *beta, *out, *mean, *rstd, *var, *P;
} bn_ctx;

static double bn_loss(void *v)
{
	bn_ctx *c = v;
	nn_batchnorm_forward(c->out, c->mean, c->rstd, c->var, c->inp, c->gamma, c->beta,
			     c->N, c->C);
	return proj(c->out, c->P, (long)c->N * c->C);
}

static void bn_setup(bn_ctx *c, int N, int C)
{
	c->N = N, c->C = C;
	c->inp = norm_input(1, N, C, C);
	c->gamma = randn(C, 0.3f, 1.0f);
	c->beta = randn(C, 0.3f, 0.0f);
	c->out = fa((long)N * C);
	c->mean = fa(C), c->rstd = fa(C), c->var = fa(C);
	c->P = randn((long)N * C, 1.0f, 0.0f);
}

static void test_batchnorm_forward(void **state)
{
	seed(8);
	static const int sizes[][2] = {{6, 5}, {3, 300}, {64, 600}};
	for (int t = 0; t < 3; t++) {
		bn_ctx c;
		const int N = sizes[t][0], C = sizes[t][1];
		bn_setup(&c, N, C);
		bn_loss(&c);
		double *m = da(C), *v = da(C);
		ref_stats(m, v, c.inp, 1, N, C, C);
		for (int k = 0; k < C; k++) {
			assert_true(fabs(c.mean[k] - m[k]) < 1e-6 * (1 + fabs(m[k])));
			assert_true(fabs(c.var[k] - v[k]) < 1e-6 * v[k]);
			assert_true(fabs(c.rstd[k] - 1 / sqrt(v[k] + NN_EPS)) <
				    1e-6 * c.rstd[k]);
			for (int i = 0; i < N; i++) {
				long j = (long)i * C + k;
				double want =
				    (c.inp[j] - m[k]) / sqrt(v[k] + NN_EPS) * c.gamma[k] +
				    c.beta[k];
				assert_true(fabs(c.out[j] - want) <
					    1e-5 * (1 + fabs(want)));
			}
		}
	}
}

/* A large common offset does not spoil the variance (two-pass, in double). */
static void test_batchnorm_large_offset(void **state)
{
	seed(9);
	const int N = 256, C = 8;
	float *x = randn((long)N * C, 1.0f, 1e4f), *out = fa((long)N * C);
	float *mean = fa(C), *rstd = fa(C), *var = fa(C);
	nn_batchnorm_forward(out, mean, rstd, var, x, NULL, NULL, N, C);
	double *m = da(C), *v = da(C);
	ref_stats(m, v, x, 1, N, C, C);
	for (int k = 0; k < C; k++) {
		assert_true(v[k] > 0.5);
		assert_true(fabs(var[k] - v[k]) < 1e-6 * v[k]);
	}
}

static void test_batchnorm_grad(void **state)
{
	seed(10);
	static const int sizes[][2] = {{6, 5}, {3, 300}};
	for (int t = 0; t < 2; t++) {
		bn_ctx c;
		const int N = sizes[t][0], C = sizes[t][1];
		const long n = (long)N * C;
		bn_setup(&c, N, C);
		float *dx = fa(n), *dg = fa(C), *db = fa(C);
		bn_loss(&c);
		nn_batchnorm_backward(dx, dg, db, c.P, c.inp, c.mean, c.rstd, c.gamma, N,
				      C);
		double *num =
		    check_grad("batchnorm dinp", dx, c.inp, n, 1e-2f, bn_loss, &c);
		check_grad("batchnorm dgamma", dg, c.gamma, C, 1e-2f, bn_loss, &c);
		check_grad("batchnorm dbeta", db, c.beta, C, 1e-2f, bn_loss, &c);
		check_missing_terms("batchnorm", num, c.inp, c.P, c.gamma, 1, N, C, C);
	}
}

static void test_batchnorm_accumulate_and_null(void **state)
{
	seed(11);
	bn_ctx c;
	const int N = 12, C = 7;
	const long n = (long)N * C;
	bn_setup(&c, N, C);
	bn_loss(&c);
	float *x1 = fa(n), *g1 = fa(C), *b1 = fa(C), *x2 = fa(n), *g2 = fa(C),
	      *b2 = fa(C);
	nn_batchnorm_backward(x1, g1, b1, c.P, c.inp, c.mean, c.rstd, c.gamma, N, C);
	for (int k = 0; k < 2; k++)
		nn_batchnorm_backward(x2, g2, b2, c.P, c.inp, c.mean, c.rstd, c.gamma, N,
				      C);
	assert_twice(x2, x1, n, 0.0f);
	assert_twice(g2, g1, C, 0.0f);
	assert_twice(b2, b1, C, 0.0f);

	float *x3 = fa(n), *g3 = fa(C), *b3 = fa(C);
	nn_batchnorm_backward(x3, NULL, NULL, c.P, c.inp, c.mean, c.rstd, c.gamma, N, C);
	nn_batchnorm_backward(NULL, g3, NULL, c.P, c.inp, c.mean, c.rstd, c.gamma, N, C);
	nn_batchnorm_backward(NULL, NULL, b3, c.P, c.inp, c.mean, c.rstd, c.gamma, N, C);
	nn_batchnorm_backward(NULL, NULL, NULL, c.P, c.inp, c.mean, c.rstd, c.gamma, N,
			      C);
	assert_memory_equal(x3, x1, sizeof(float) * n);
	assert_memory_equal(g3, g1, sizeof(float) * C);
	assert_memory_equal(b3, b1, sizeof(float) * C);
}

/* Evaluation mode with the batch's own statistics is the training output,
 * bit for bit; with other statistics it is the formula of the header. */
static void test_batchnorm_infer(void **state)
{
	seed(12);
	static const int sizes[][2] = {{6, 5}, {32, 300}};
	for (int t = 0; t < 2; t++) {
		bn_ctx c;
		const int N = sizes[t][0], C = sizes[t][1];
		const long n = (long)N * C;
		bn_setup(&c, N, C);
		bn_loss(&c);
		float *out = fa(n);
		nn_batchnorm_infer(out, c.inp, c.mean, c.var, c.gamma, c.beta, N, C);
		assert_memory_equal(out, c.out, sizeof(float) * n);
		float *x = copy(c.inp, n); /* in place */
		nn_batchnorm_infer(x, x, c.mean, c.var, c.gamma, c.beta, N, C);
		assert_memory_equal(x, c.out, sizeof(float) * n);

		float *rm = randn(C, 1.0f, 0.0f), *rv = fa(C);
		for (int k = 0; k < C; k++)
			rv[k] = 0.5f + (float)unif();
		nn_batchnorm_infer(out, c.inp, rm, rv, c.gamma, c.beta, N, C);
		for (long j = 0; j < n; j++) {
			int k = (int)(j % C);
			double want = (c.inp[j] - (double)rm[k]) /
					  sqrt(rv[k] + (double)NN_EPS) * c.gamma[k] +
				      c.beta[k];
			assert_true(fabs(out[j] - want) < 1e-5 * (1 + fabs(want)));
		}
	}
}

/* ---- group norm ---- */

typedef struct {
	int B, S, C, G;
	float *inp, *gamma, *beta, *out, *mean, *rstd, *P;
} gn_ctx;

static double gn_loss(void *v)
{
	gn_ctx *c = v;
	nn_groupnorm_forward(c->out, c->mean, c->rstd, c->inp, c->gamma, c->beta, c->B,
			     c->S, c->C, c->G);
	return proj(c->out, c->P, (long)c->B * c->S * c->C);
}

static void gn_setup(gn_ctx *c, int B, int S, int C, int G)
{
	c->B = B, c->S = S, c->C = C, c->G = G;
	const long n = (long)B * S * C;
	c->inp = norm_input(B, S, C, G);
	c->gamma = randn(C, 0.3f, 1.0f);
	c->beta = randn(C, 0.3f, 0.0f);
	c->out = fa(n);
	c->mean = fa((long)B * G), c->rstd = fa((long)B * G);
	c->P = randn(n, 1.0f, 0.0f);
}

/* (B, S, C, G): layer norm (G = 1), per channel (G = C), in between; S = 1
 * and S > 1; groups wider than a tile, and blocks of several groups. */
static const int gn_cases[][4] = {
	{3, 1, 8, 1}, {2, 5, 6, 1}, {2, 4, 6, 6}, {2, 3, 8, 8}, {3, 1, 12, 4},
	{2, 4, 12, 3}, {2, 1, 600, 1}, {1, 2, 600, 6}, {1, 2, 600, 100},
};
#define GN_CASES (int)(sizeof gn_cases / sizeof gn_cases[0])

static void test_groupnorm_forward(void **state)
{
	seed(13);
	for (int t = 0; t < GN_CASES; t++) {
		const int B = gn_cases[t][0], S = gn_cases[t][1], C = gn_cases[t][2],
			  G = gn_cases[t][3], CG = C / G;
		gn_ctx c;
		gn_setup(&c, B, S, C, G);
		c.gamma = NULL, c.beta = NULL; /* the plain standardisation */
		gn_loss(&c);
		double *m = da((long)B * G), *v = da((long)B * G);
		ref_stats(m, v, c.inp, B, S, C, G);
		for (int b = 0; b < B; b++)
			for (int g = 0; g < G; g++) {
				assert_true(fabs(c.mean[b * G + g] - m[b * G + g]) <
					    1e-5);
				assert_true(
				    fabs(c.rstd[b * G + g] * sqrt(v[b * G + g] + NN_EPS) -
					 1) < 1e-6);
				double s = 0.0, q = 0.0;
				for (int i = 0; i < S; i++)
					for (int k = 0; k < CG; k++) {
						double y = c.out[((long)b * S + i) * C +
								 g * CG + k];
						s += y;
						q += y * y;
					}
				s /= (double)S * CG;
				q = q / ((double)S * CG) - s * s;
				/* zero mean, unit variance up to eps */
				assert_true(fabs(s) < 1e-6);
				double want = v[b * G + g] / (v[b * G + g] + NN_EPS);
				if (fabs(q - want) > 1e-5)
					fail_msg(
					    "groupnorm B%d S%d C%d G%d: var %.8f != %.8f",
					    B, S, C, G, q, want);
			}
	}
}

static void test_groupnorm_grad(void **state)
{
	seed(14);
	for (int t = 0; t < GN_CASES; t++) {
		const int B = gn_cases[t][0], S = gn_cases[t][1], C = gn_cases[t][2],
			  G = gn_cases[t][3];
		const long n = (long)B * S * C;
		gn_ctx c;
		gn_setup(&c, B, S, C, G);
		float *dx = fa(n), *dg = fa(C), *db = fa(C);
		gn_loss(&c);
		nn_groupnorm_backward(dx, dg, db, c.P, c.inp, c.mean, c.rstd, c.gamma, B,
				      S, C, G);
		char name[96];
		snprintf(name, sizeof name, "groupnorm B%d S%d C%d G%d", B, S, C, G);
		double *num = check_grad(name, dx, c.inp, n, 1e-2f, gn_loss, &c);
		check_grad(name, dg, c.gamma, C, 1e-2f, gn_loss, &c);
		check_grad(name, db, c.beta, C, 1e-2f, gn_loss, &c);
		check_missing_terms(name, num, c.inp, c.P, c.gamma, B, S, C, G);
	}
}

static void test_groupnorm_accumulate_and_null(void **state)
{
	seed(15);
	const int B = 3, S = 4, C = 12, G = 3;
	const long n = (long)B * S * C;
	gn_ctx c;
	gn_setup(&c, B, S, C, G);
	gn_loss(&c);
	float *x1 = fa(n), *g1 = fa(C), *b1 = fa(C), *x2 = fa(n), *g2 = fa(C),
	      *b2 = fa(C);
	nn_groupnorm_backward(x1, g1, b1, c.P, c.inp, c.mean, c.rstd, c.gamma, B, S, C,
			      G);
	for (int k = 0; k < 2; k++)
		nn_groupnorm_backward(x2, g2, b2, c.P, c.inp, c.mean, c.rstd, c.gamma, B,
				      S, C, G);
	assert_twice(x2, x1, n, 0.0f);
	/* dgamma, dbeta sum over samples: the second call adds onto a non-zero total */
	assert_twice(g2, g1, C, 1e-6f);
	assert_twice(b2, b1, C, 1e-6f);

	float *x3 = fa(n), *g3 = fa(C), *b3 = fa(C);
	nn_groupnorm_backward(x3, NULL, NULL, c.P, c.inp, c.mean, c.rstd, c.gamma, B, S,
			      C, G);
	nn_groupnorm_backward(NULL, g3, NULL, c.P, c.inp, c.mean, c.rstd, c.gamma, B, S,
			      C, G);
	nn_groupnorm_backward(NULL, NULL, b3, c.P, c.inp, c.mean, c.rstd, c.gamma, B, S,
			      C, G);
	nn_groupnorm_backward(NULL, NULL, NULL, c.P, c.inp, c.mean, c.rstd, c.gamma, B, S,
			      C, G);
	assert_memory_equal(x3, x1, sizeof(float) * n);
	assert_memory_equal(g3, g1, sizeof(float) * C);
	assert_memory_equal(b3, b1, sizeof(float) * C);
}

/* With S = 1, a group norm given gamma and beta runs along contiguous spans;
 * without them it takes the general path. Both give the same numbers. */
static void test_groupnorm_span_path(void **state)
{
	seed(22);
	const int B = 3, C = 40, G = 4;
	const long n = (long)B * C;
	gn_ctx c;
	gn_setup(&c, B, 1, C, G);
	for (int k = 0; k < C; k++)
		c.gamma[k] = 1.0f, c.beta[k] = 0.0f;
	gn_loss(&c);
	float *out = fa(n), *mean = fa(B * G), *rstd = fa(B * G);
	nn_groupnorm_forward(out, mean, rstd, c.inp, NULL, NULL, B, 1, C, G);
	double *want = da(n);
	for (long i = 0; i < n; i++)
		want[i] = c.out[i];
	assert_near(out, want, n, 1e-6);
	for (int i = 0; i < B * G; i++) {
		want[i] = c.mean[i];
		want[B * G + i] = c.rstd[i];
	}
	assert_near(mean, want, B * G, 1e-6);
	assert_near(rstd, want + B * G, B * G, 1e-6);

	float *x1 = fa(n), *g1 = fa(C), *b1 = fa(C), *x2 = fa(n), *g2 = fa(C),
	      *b2 = fa(C);
	nn_groupnorm_backward(x1, g1, b1, c.P, c.inp, c.mean, c.rstd, c.gamma, B, 1, C,
			      G);
	nn_groupnorm_backward(x2, g2, b2, c.P, c.inp, c.mean, c.rstd, NULL, B, 1, C, G);
	for (long i = 0; i < n; i++)
		want[i] = x1[i];
	assert_near(x2, want, n, 1e-5);
	for (int i = 0; i < C; i++)
		want[i] = g1[i], want[C + i] = b1[i];
	assert_near(g2, want, C, 1e-5);
	assert_near(b2, want + C, C, 1e-5);
}

/* ---- weight standardisation ---- */

typedef struct {
	int OUT, FAN;
	float *w, *what, *mean, *rstd, *P;
} ws_ctx;

static double ws_loss(void *v)
{
	ws_ctx *c = v;
	nn_wstd_forward(c->what, c->mean, c->rstd, c->w, c->OUT, c->FAN);
	return proj(c->what, c->P, (long)c->OUT * c->FAN);
}

static void ws_setup(ws_ctx *c, int OUT, int FAN)
{
	c->OUT = OUT, c->FAN = FAN;
	c->w = randn((long)OUT * FAN, 0.5f, 0.2f);
	c->what = fa((long)OUT * FAN);
	c->mean = fa(OUT), c->rstd = fa(OUT);
	c->P = randn((long)OUT * FAN, 1.0f, 0.0f);
}

static void test_wstd_forward(void **state)
{
	seed(16);
	ws_ctx c;
	ws_setup(&c, 5, 27);
	ws_loss(&c);
	double *m = da(5), *v = da(5);
	ref_stats(m, v, c.w, 5, 1, 27, 1);
	for (int o = 0; o < 5; o++) {
		assert_true(fabs(c.mean[o] - m[o]) < 1e-6);
		assert_true(fabs(c.rstd[o] * sqrt(v[o] + NN_EPS) - 1) < 1e-6);
		for (int i = 0; i < 27; i++) {
			double want = (c.w[o * 27 + i] - m[o]) / sqrt(v[o] + NN_EPS);
			assert_true(fabs(c.what[o * 27 + i] - want) < 1e-5);
		}
	}
}

static void test_wstd_grad(void **state)
{
	seed(17);
	static const int sizes[][2] = {{4, 9}, {3, 27}, {2, 1000}};
	for (int t = 0; t < 3; t++) {
		const int OUT = sizes[t][0], FAN = sizes[t][1];
		const long n = (long)OUT * FAN;
		ws_ctx c;
		ws_setup(&c, OUT, FAN);
		float *dw = fa(n);
		ws_loss(&c);
		nn_wstd_backward(dw, c.P, c.what, c.rstd, OUT, FAN);
		double *num = check_grad("wstd dw", dw, c.w, n, 1e-2f, ws_loss, &c);
		float *ones = fa(FAN);
		for (int i = 0; i < FAN; i++)
			ones[i] = 1.0f;
		check_missing_terms("wstd", num, c.w, c.P, ones, OUT, 1, FAN, 1);
	}
}

static void test_wstd_accumulate_and_null(void **state)
{
	seed(18);
	ws_ctx c;
	const int OUT = 6, FAN = 36;
	const long n = (long)OUT * FAN;
	ws_setup(&c, OUT, FAN);
	ws_loss(&c);
	float *d1 = fa(n), *d2 = fa(n);
	nn_wstd_backward(d1, c.P, c.what, c.rstd, OUT, FAN);
	nn_wstd_backward(d2, c.P, c.what, c.rstd, OUT, FAN);
	nn_wstd_backward(d2, c.P, c.what, c.rstd, OUT, FAN);
	assert_twice(d2, d1, n, 0.0f);
	nn_wstd_backward(NULL, c.P, c.what, c.rstd, OUT, FAN);
}

#define T(f) cmocka_unit_test_teardown(f, free_all)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_batchnorm_forward),
		T(test_batchnorm_large_offset),
		T(test_batchnorm_grad),
		T(test_batchnorm_accumulate_and_null),
		T(test_batchnorm_infer),
		T(test_groupnorm_forward),
		T(test_groupnorm_grad),
		T(test_groupnorm_accumulate_and_null),
		T(test_groupnorm_span_path),
		T(test_wstd_forward),
		T(test_wstd_grad),
		T(test_wstd_accumulate_and_null),
	};
	return nn_check_report(cmocka_run_group_tests(tests, NULL, NULL));
}
