/*
 * test_nn.c — the layers of nn.h: finite-difference proofs of every backward
 * pass, accumulation and NULL-gradient semantics, and forward passes against
 * naive double-precision references.
 *
 * Dimension legend: as in include/byol/nn.h.
 *
 * Gradient checks use the loss L = sum(out * P) for a random projection P, so
 * that dL/dout = P. The numerical gradient is a central difference of the float
 * forward pass with L accumulated in double, divided by the step actually taken
 * in float. The error of analytic a against numerical n is
 *     max_i |a_i - n_i| / max(|a_i|, |n_i|, 1e-2 * max_j |n_j|)
 * and must stay under TOL; the norm tests also show that the same measure flags
 * gradients with one term of the formula left out.
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

#define TOL 1e-2

/* ---- helpers: a local generator, allocations freed after each test ---- */

static uint64_t rs;

static void seed(uint64_t s)
{
	rs = (s + 1) * 0x9E3779B97F4A7C15ull;
}

static uint32_t next_u32(void)
{
	/* xorshift64* */
	rs ^= rs >> 12;
	rs ^= rs << 25;
	rs ^= rs >> 27;
	return (uint32_t)((rs * 0x2545F4914F6CDD1Dull) >> 32);
}

static double unif(void)
{
	return (next_u32() + 0.5) / 4294967296.0;
}

static float gauss(void)
{
	return (float)(sqrt(-2.0 * log(unif())) * cos(2.0 * M_PI * unif()));
}

static void *blocks[256];
static int nblocks;

static float *fa(long n)
{
	assert_true(nblocks < 256);
	float *p = calloc((size_t)n, sizeof(float));
	assert_non_null(p);
	blocks[nblocks++] = p;
	return p;
}

static double *da(long n)
{
	assert_true(nblocks < 256);
	double *p = calloc((size_t)n, sizeof(double));
	assert_non_null(p);
	blocks[nblocks++] = p;
	return p;
}

static int free_all(void **state)
{
	(void)state;
	while (nblocks > 0)
		free(blocks[--nblocks]);
	return 0;
}

/* n floats, normal * scale + shift */
static float *randn(long n, float scale, float shift)
{
	float *p = fa(n);
	for (long i = 0; i < n; i++)
		p[i] = gauss() * scale + shift;
	return p;
}

static float *copy(const float *src, long n)
{
	float *p = fa(n);
	memcpy(p, src, sizeof(float) * n);
	return p;
}

static double proj(const float *out, const float *P, long n)
{
	double s = 0.0;
	for (long i = 0; i < n; i++)
		s += (double)out[i] * P[i];
	return s;
}

/* two == 2 * one, from backward twice and once into zeroed gradients. x + x is
 * exact in float; tol is for gradients summed from several terms added one by
 * one onto the existing value (sgemm with beta = 1, col2im, per-sample sums). */
static void assert_twice(const float *two, const float *one, long n, float tol)
{
	for (long i = 0; i < n; i++)
		if (!(fabsf(two[i] - 2 * one[i]) <= tol * (1 + fabsf(one[i]))))
			fail_msg("[%ld]: %.9g after two calls, %.9g after one", i, two[i],
				 one[i]);
}

static void assert_near(const float *got, const double *want, long n, double tol)
{
	for (long i = 0; i < n; i++)
		if (!(fabs(got[i] - want[i]) <= tol * (1 + fabs(want[i]))))
			fail_msg("[%ld]: %.9g, want %.9g", i, got[i], want[i]);
}

/* ---- the gradient check ---- */

typedef double (*loss_fn)(void *ctx);

/* Set by a loss function whose evaluation crossed a kink (a ReLU changing
 * sides); that element's difference quotient is then not used. */
static int fd_invalid;

static void numgrad(double *num, float *p, long n, float eps, loss_fn f, void *ctx)
{
	for (long i = 0; i < n; i++) {
		const float save = p[i], hi = save + eps, lo = save - eps;
		fd_invalid = 0;
		p[i] = hi;
		const double lp = f(ctx);
		p[i] = lo;
		const double lm = f(ctx);
		p[i] = save;
		num[i] = fd_invalid ? NAN : (lp - lm) / ((double)hi - (double)lo);
	}
	fd_invalid = 0;
}

/* (NaN entries, skipped differences, are ignored here and below.) */
static double maxabs(const double *v, long n)
{
	double m = 0.0;
	for (long i = 0; i < n; i++)
		if (!isnan(v[i]))
			m = fmax(m, fabs(v[i]));
	return m;
}

static double grad_err_d(const double *ana, const double *num, long n)
{
	const double floor = 1e-2 * maxabs(num, n);
	double worst = 0.0;
	for (long i = 0; i < n; i++) {
		if (isnan(num[i]))
			continue;
		double den = fmax(fmax(fabs(ana[i]), fabs(num[i])), floor);
		if (den > 0.0)
			worst = fmax(worst, fabs(ana[i] - num[i]) / den);
	}
	return worst;
}

static double grad_err(const float *ana, const double *num, long n)
{
	double *a = da(n);
	for (long i = 0; i < n; i++)
		a[i] = ana[i];
	return grad_err_d(a, num, n);
}

static double worst_err;

/* Checks the analytic gradient ana (n) of f with respect to p (n); returns the
 * numerical gradient for further checks. */
static double *check_grad(const char *what, const float *ana, float *p, long n, float eps,
			  loss_fn f, void *ctx)
{
	double *num = da(n);
	numgrad(num, p, n, eps, f, ctx);
	long skipped = 0;
	for (long i = 0; i < n; i++)
		skipped += isnan(num[i]);
	if (skipped > n / 4)
		fail_msg("%s: %ld of %ld differences crossed a kink", what, skipped, n);
	if (maxabs(num, n) < 1e-3)
		fail_msg("%s: numerical gradient vanishes, the check is vacuous", what);
	f(ctx); /* leave the forward state of the unperturbed parameters */
	const double e = grad_err(ana, num, n);
	if (getenv("NN_DEBUG"))
		for (long i = 0; i < n; i++)
			printf("%s %ld %g %g\n", what, i, ana[i], num[i]);
	worst_err = fmax(worst_err, e);
	if (!(e < TOL))
		fail_msg("%s: gradient error %.3g >= %g", what, e, TOL);
	return num;
}

/* ---- linear ---- */

typedef struct {
	int B, IN, OUT;
	float *inp, *w, *b, *out, *P;
} linear_ctx;

static double linear_loss(void *v)
{
	linear_ctx *c = v;
	nn_linear_forward(c->out, c->inp, c->w, c->b, c->B, c->IN, c->OUT);
	return proj(c->out, c->P, (long)c->B * c->OUT);
}

static void linear_setup(linear_ctx *c, int B, int IN, int OUT)
{
	c->B = B, c->IN = IN, c->OUT = OUT;
	c->inp = randn((long)B * IN, 1.0f, 0.0f);
	c->w = randn((long)OUT * IN, 0.5f, 0.0f);
	c->b = randn(OUT, 0.5f, 0.0f);
	c->out = fa((long)B * OUT);
	c->P = randn((long)B * OUT, 1.0f, 0.0f);
}

static void test_linear_forward_naive(void **state)
{
	seed(1);
	linear_ctx c;
	linear_setup(&c, 5, 7, 3);
	for (int with_bias = 0; with_bias < 2; with_bias++) {
		nn_linear_forward(c.out, c.inp, c.w, with_bias ? c.b : NULL, c.B, c.IN,
				  c.OUT);
		for (int r = 0; r < c.B; r++)
			for (int o = 0; o < c.OUT; o++) {
				double s = with_bias ? c.b[o] : 0.0;
				for (int i = 0; i < c.IN; i++)
					s += (double)c.inp[r * c.IN + i] *
					     c.w[o * c.IN + i];
				assert_true(fabs(c.out[r * c.OUT + o] - s) < 1e-5);
			}
	}
}

static void test_linear_grad(void **state)
{
	seed(2);
	linear_ctx c;
	linear_setup(&c, 4, 6, 5);
	float *dinp = fa(4 * 6), *dw = fa(5 * 6), *db = fa(5);
	linear_loss(&c);
	nn_linear_backward(dinp, dw, db, c.P, c.inp, c.w, c.B, c.IN, c.OUT);
	check_grad("linear dinp", dinp, c.inp, 4 * 6, 1e-2f, linear_loss, &c);
	check_grad("linear dw", dw, c.w, 5 * 6, 1e-2f, linear_loss, &c);
	check_grad("linear db", db, c.b, 5, 1e-2f, linear_loss, &c);
}

/* Backward twice into zeroed gradients gives twice the gradients; NULL
 * gradients are skipped without changing the others. */
static void test_linear_accumulate_and_null(void **state)
{
	seed(3);
	linear_ctx c;
	const int B = 16, IN = 40, OUT = 24;
	linear_setup(&c, B, IN, OUT);
	float *d1 = fa(B * IN), *w1 = fa(OUT * IN), *b1 = fa(OUT);
	float *d2 = fa(B * IN), *w2 = fa(OUT * IN), *b2 = fa(OUT);
	nn_linear_backward(d1, w1, b1, c.P, c.inp, c.w, B, IN, OUT);
	nn_linear_backward(d2, w2, b2, c.P, c.inp, c.w, B, IN, OUT);
	nn_linear_backward(d2, w2, b2, c.P, c.inp, c.w, B, IN, OUT);
	assert_twice(d2, d1, B * IN, 1e-5f);
	assert_twice(w2, w1, OUT * IN, 1e-5f);
	assert_twice(b2, b1, OUT, 0.0f);

	float *d3 = fa(B * IN), *w3 = fa(OUT * IN), *b3 = fa(OUT);
	nn_linear_backward(d3, NULL, NULL, c.P, c.inp, c.w, B, IN, OUT);
	nn_linear_backward(NULL, w3, NULL, c.P, c.inp, c.w, B, IN, OUT);
	nn_linear_backward(NULL, NULL, b3, c.P, c.inp, c.w, B, IN, OUT);
	nn_linear_backward(NULL, NULL, NULL, c.P, c.inp, c.w, B, IN, OUT);
	assert_memory_equal(d3, d1, sizeof(float) * B * IN);
	assert_memory_equal(w3, w1, sizeof(float) * OUT * IN);
	assert_memory_equal(b3, b1, sizeof(float) * OUT);
}

/* ---- conv3x3 ---- */

typedef struct {
	int B, H, W, C, OC, stride, HO, WO;
	float *inp, *w, *b, *out, *cols, *P;
} conv_ctx;

static long conv_nout(const conv_ctx *c)
{
	return (long)c->B * c->HO * c->WO * c->OC;
}

static double conv_loss(void *v)
{
	conv_ctx *c = v;
	nn_conv3x3_forward(c->out, c->cols, c->inp, c->w, c->b, c->B, c->H, c->W, c->C,
			   c->OC, c->stride);
	return proj(c->out, c->P, conv_nout(c));
}

static void conv_setup(conv_ctx *c, int B, int H, int W, int C, int OC, int stride)
{
	c->B = B, c->H = H, c->W = W, c->C = C, c->OC = OC, c->stride = stride;
	c->HO = nn_conv_out(H, stride), c->WO = nn_conv_out(W, stride);
	c->inp = randn((long)B * H * W * C, 1.0f, 0.0f);
	c->w = randn((long)OC * 9 * C, 0.3f, 0.0f);
	c->b = randn(OC, 0.5f, 0.0f);
	c->out = fa(conv_nout(c));
	c->cols = fa((long)B * c->HO * c->WO * 9 * C);
	c->P = randn(conv_nout(c), 1.0f, 0.0f);
}

/* Direct convolution in double: out (B, HO, WO, OC), and the gradients of
 * sum(out * P): dinp (B, H, W, C), dw (OC, 3, 3, C), db (OC) (zeroed by the
 * caller). */
static void naive_conv(double *out, double *dinp, double *dw, double *db,
		       const conv_ctx *c)
{
	const int C = c->C;
	for (long y = 0; y < conv_nout(c); y++) {
		const int o = (int)(y % c->OC);
		const long pix = y / c->OC; /* (b, oh, ow) */
		const int ow = (int)(pix % c->WO), oh = (int)(pix / c->WO % c->HO);
		const int b = (int)(pix / ((long)c->WO * c->HO));
		const double g = c->P[y];
		double s = c->b ? c->b[o] : 0.0;
		db[o] += g;
		for (int t = 0; t < 9; t++) { /* tap (kh, kw) = (t / 3, t % 3) */
			const int ih = oh * c->stride - 1 + t / 3;
			const int iw = ow * c->stride - 1 + t % 3;
			if (ih < 0 || ih >= c->H || iw < 0 || iw >= c->W)
				continue;
			const long xo = (((long)b * c->H + ih) * c->W + iw) * C;
			const long wo = ((long)o * 9 + t) * C;
			for (int i = 0; i < C; i++) {
				s += (double)c->inp[xo + i] * c->w[wo + i];
				dinp[xo + i] += g * c->w[wo + i];
				dw[wo + i] += g * c->inp[xo + i];
			}
		}
		out[y] = s;
	}
}

static void test_conv_out_size(void **state)
{
	assert_int_equal(nn_conv_out(28, 1), 28);
	assert_int_equal(nn_conv_out(28, 2), 14);
	assert_int_equal(nn_conv_out(7, 2), 4);
	assert_int_equal(nn_conv_out(1, 2), 1);
	assert_int_equal(nn_conv_out(14, 2), 7);
}

static void conv_against_naive(int B, int H, int W, int C, int OC, int stride)
{
	conv_ctx c;
	conv_setup(&c, B, H, W, C, OC, stride);
	const long nx = (long)B * H * W * C, nw = (long)OC * 9 * C;
	double *ref = da(conv_nout(&c)), *rx = da(nx), *rw = da(nw), *rb = da(OC);
	float *dx = fa(nx), *dw = fa(nw), *db = fa(OC),
	      *dcols = fa((long)B * c.HO * c.WO * 9 * C);
	for (int with_bias = 1; with_bias >= 0; with_bias--) {
		if (!with_bias)
			c.b = NULL;
		memset(rx, 0, sizeof(double) * nx);
		memset(rw, 0, sizeof(double) * nw);
		memset(rb, 0, sizeof(double) * OC);
		conv_loss(&c);
		naive_conv(ref, rx, rw, rb, &c);
		assert_near(c.out, ref, conv_nout(&c), 1e-5);
	}
	nn_conv3x3_backward(dx, dw, db, dcols, c.P, c.cols, c.w, B, H, W, C, OC, stride);
	assert_near(dx, rx, nx, 1e-5);
	assert_near(dw, rw, nw, 1e-5);
	assert_near(db, rb, OC, 1e-5);
}

static void test_conv_against_naive(void **state)
{
	seed(4);
	conv_against_naive(2, 9, 8, 5, 7, 1);
	conv_against_naive(2, 9, 8, 5, 7, 2);
	conv_against_naive(3, 7, 7, 1, 4, 1); /* one input channel, as on raw images */
	conv_against_naive(2, 8, 10, 16, 8, 2);
	conv_against_naive(1, 1, 1, 3, 2, 1); /* a 1x1 image: only the centre tap */
	conv_against_naive(1, 2, 3, 3, 2, 2);
}

static void conv_grad(int B, int H, int W, int C, int OC, int stride)
{
	conv_ctx c;
	conv_setup(&c, B, H, W, C, OC, stride);
	const long nx = (long)B * H * W * C, nw = (long)OC * 9 * C;
	float *dx = fa(nx), *dw = fa(nw), *db = fa(OC),
	      *dcols = fa((long)B * c.HO * c.WO * 9 * C);
	conv_loss(&c);
	nn_conv3x3_backward(dx, dw, db, dcols, c.P, c.cols, c.w, B, H, W, C, OC, stride);
	char name[64];
	snprintf(name, sizeof name, "conv %dx%d s%d dinp", H, W, stride);
	check_grad(name, dx, c.inp, nx, 1e-2f, conv_loss, &c);
	snprintf(name, sizeof name, "conv %dx%d s%d dw", H, W, stride);
	check_grad(name, dw, c.w, nw, 1e-2f, conv_loss, &c);
	snprintf(name, sizeof name, "conv %dx%d s%d db", H, W, stride);
	check_grad(name, db, c.b, OC, 1e-2f, conv_loss, &c);
}

static void test_conv_grad_stride1(void **state)
{
	seed(5);
	conv_grad(2, 5, 5, 3, 4, 1); /* odd */
	conv_grad(2, 6, 4, 2, 3, 1); /* even */
}

static void test_conv_grad_stride2(void **state)
{
	seed(6);
	conv_grad(2, 5, 7, 3, 4, 2); /* odd */
	conv_grad(2, 6, 6, 2, 3, 2); /* even */
}

static void test_conv_accumulate_and_null(void **state)
{
	seed(7);
	conv_ctx c;
	const int B = 2, H = 6, W = 5, C = 4, OC = 6, s = 2;
	conv_setup(&c, B, H, W, C, OC, s);
	const long nx = (long)B * H * W * C, nw = (long)OC * 9 * C;
	float *dcols = fa((long)B * c.HO * c.WO * 9 * C);
	float *x1 = fa(nx), *w1 = fa(nw), *b1 = fa(OC), *x2 = fa(nx), *w2 = fa(nw),
	      *b2 = fa(OC);
	conv_loss(&c);
	nn_conv3x3_backward(x1, w1, b1, dcols, c.P, c.cols, c.w, B, H, W, C, OC, s);
	nn_conv3x3_backward(x2, w2, b2, dcols, c.P, c.cols, c.w, B, H, W, C, OC, s);
	nn_conv3x3_backward(x2, w2, b2, dcols, c.P, c.cols, c.w, B, H, W, C, OC, s);
	assert_twice(x2, x1, nx, 1e-5f); /* several windows add into one pixel */
	assert_twice(w2, w1, nw, 1e-5f);
	assert_twice(b2, b1, OC, 0.0f);

	float *x3 = fa(nx), *w3 = fa(nw), *b3 = fa(OC);
	nn_conv3x3_backward(x3, NULL, NULL, dcols, c.P, c.cols, c.w, B, H, W, C, OC, s);
	nn_conv3x3_backward(NULL, w3, NULL, NULL, c.P, c.cols, c.w, B, H, W, C, OC, s);
	nn_conv3x3_backward(NULL, NULL, b3, NULL, c.P, c.cols, c.w, B, H, W, C, OC, s);
	assert_memory_equal(x3, x1, sizeof(float) * nx);
	assert_memory_equal(w3, w1, sizeof(float) * nw);
	assert_memory_equal(b3, b1, sizeof(float) * OC);
}

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

/* ---- relu and average pooling ---- */

typedef struct {
	long n;
	float *inp, *out, *P;
} relu_ctx;

static double relu_loss(void *v)
{
	relu_ctx *c = v;
	nn_relu_forward(c->out, c->inp, c->n);
	return proj(c->out, c->P, c->n);
}

static void test_relu(void **state)
{
	seed(19);
	relu_ctx c = {.n = 64};
	c.inp = randn(c.n, 1.0f, 0.0f);
	for (long i = 0; i < c.n; i++) /* keep finite differences off the kink */
		c.inp[i] += c.inp[i] < 0 ? -0.05f : 0.05f;
	c.out = fa(c.n), c.P = randn(c.n, 1.0f, 0.0f);
	relu_loss(&c);
	for (long i = 0; i < c.n; i++)
		assert_true(c.out[i] == (c.inp[i] > 0 ? c.inp[i] : 0.0f));
	float *d = fa(c.n), *d2 = fa(c.n);
	nn_relu_backward(d, c.P, c.out, c.n);
	check_grad("relu", d, c.inp, c.n, 1e-2f, relu_loss, &c);
	nn_relu_backward(d2, c.P, c.out, c.n);
	nn_relu_backward(d2, c.P, c.out, c.n);
	assert_twice(d2, d, c.n, 0.0f);
	nn_relu_backward(NULL, c.P, c.out, c.n);

	float *x = copy(c.inp, c.n); /* in place */
	nn_relu_forward(x, x, c.n);
	assert_memory_equal(x, c.out, sizeof(float) * c.n);
	x[3] = NAN; /* a NaN is not hidden from the checks downstream */
	nn_relu_forward(c.out, x, c.n);
	assert_true(isnan(c.out[3]));
}

typedef struct {
	int B, S, C;
	float *inp, *out, *P;
} pool_ctx;

static double pool_loss(void *v)
{
	pool_ctx *c = v;
	nn_avgpool_forward(c->out, c->inp, c->B, c->S, c->C);
	return proj(c->out, c->P, (long)c->B * c->C);
}

static void test_avgpool(void **state)
{
	seed(20);
	pool_ctx c = {.B = 3, .S = 7, .C = 5};
	const long n = (long)c.B * c.S * c.C;
	c.inp = randn(n, 1.0f, 0.5f);
	c.out = fa(c.B * c.C);
	c.P = randn(c.B * c.C, 1.0f, 0.0f);
	pool_loss(&c);
	for (int b = 0; b < c.B; b++)
		for (int k = 0; k < c.C; k++) {
			double s = 0.0;
			for (int i = 0; i < c.S; i++)
				s += c.inp[((long)b * c.S + i) * c.C + k];
			assert_true(fabs(c.out[b * c.C + k] - s / c.S) < 1e-6);
		}
	float *d = fa(n), *d2 = fa(n);
	nn_avgpool_backward(d, c.P, c.B, c.S, c.C);
	check_grad("avgpool", d, c.inp, n, 1e-2f, pool_loss, &c);
	nn_avgpool_backward(d2, c.P, c.B, c.S, c.C);
	nn_avgpool_backward(d2, c.P, c.B, c.S, c.C);
	assert_twice(d2, d, n, 0.0f);
	nn_avgpool_backward(NULL, c.P, c.B, c.S, c.C);
}

/* ---- a small network end to end: conv -> GN -> relu -> pool -> linear -> BN ---- */

typedef struct {
	int B, H, W, C, OC, D;
	float *x, *cw, *cb, *cols, *h1, *gg, *gbt, *gm, *gr, *h2, *h3, *p, *lw, *lb, *h4,
		*bg, *bb, *bm, *br, *out, *P;
	char *sign; /* the ReLU's side of each input at the unperturbed point */
} net_ctx;

static double net_loss(void *v)
{
	net_ctx *c = v;
	const int S = c->H * c->W;
	nn_conv3x3_forward(c->h1, c->cols, c->x, c->cw, c->cb, c->B, c->H, c->W, c->C,
			   c->OC, 1);
	nn_groupnorm_forward(c->h2, c->gm, c->gr, c->h1, c->gg, c->gbt, c->B, S, c->OC,
			     2);
	nn_relu_forward(c->h3, c->h2, (long)c->B * S * c->OC);
	if (c->sign) {
		for (long i = 0; i < (long)c->B * S * c->OC; i++)
			if ((c->h2[i] > 0) != c->sign[i])
				fd_invalid = 1;
	} else {
		c->sign = calloc((size_t)c->B * S * c->OC, 1);
		assert_non_null(c->sign);
		blocks[nblocks++] = c->sign;
		for (long i = 0; i < (long)c->B * S * c->OC; i++)
			c->sign[i] = c->h2[i] > 0;
	}
	nn_avgpool_forward(c->p, c->h3, c->B, S, c->OC);
	nn_linear_forward(c->h4, c->p, c->lw, c->lb, c->B, c->OC, c->D);
	nn_batchnorm_forward(c->out, c->bm, c->br, NULL, c->h4, c->bg, c->bb, c->B, c->D);
	return proj(c->out, c->P, (long)c->B * c->D);
}

/* The layers' backward passes chain into the gradient of the whole. */
static void test_chain(void **state)
{
	seed(21);
	net_ctx c = {.B = 4, .H = 4, .W = 3, .C = 2, .OC = 4, .D = 3};
	const int S = c.H * c.W;
	const long nh = (long)c.B * S * c.OC;
	c.x = randn((long)c.B * S * c.C, 1.0f, 0.0f);
	c.cw = randn(9L * c.C * c.OC, 0.3f, 0.0f);
	c.cb = randn(c.OC, 0.1f, 0.0f), c.cols = fa((long)c.B * S * 9 * c.C);
	c.h1 = fa(nh), c.h2 = fa(nh), c.h3 = fa(nh), c.p = fa((long)c.B * c.OC);
	c.gg = randn(c.OC, 0.2f, 1.0f), c.gbt = randn(c.OC, 0.2f, 0.3f);
	c.gm = fa(c.B * 2), c.gr = fa(c.B * 2);
	c.lw = randn((long)c.D * c.OC, 0.5f, 0.0f), c.lb = randn(c.D, 0.1f, 0.0f);
	c.h4 = fa((long)c.B * c.D), c.out = fa((long)c.B * c.D);
	c.P = randn((long)c.B * c.D, 1.0f, 0.0f);
	c.bg = randn(c.D, 0.2f, 1.0f), c.bb = randn(c.D, 0.2f, 0.0f);
	c.bm = fa(c.D), c.br = fa(c.D);
	net_loss(&c);

	float *dh4 = fa((long)c.B * c.D), *dp = fa((long)c.B * c.OC), *dh3 = fa(nh),
	      *dh2 = fa(nh), *dh1 = fa(nh), *dx = fa((long)c.B * S * c.C),
	      *dcw = fa(9L * c.C * c.OC), *dcols = fa((long)c.B * S * 9 * c.C);
	nn_batchnorm_backward(dh4, NULL, NULL, c.P, c.h4, c.bm, c.br, c.bg, c.B, c.D);
	nn_linear_backward(dp, NULL, NULL, dh4, c.p, c.lw, c.B, c.OC, c.D);
	nn_avgpool_backward(dh3, dp, c.B, S, c.OC);
	nn_relu_backward(dh2, dh3, c.h3, nh);
	nn_groupnorm_backward(dh1, NULL, NULL, dh2, c.h1, c.gm, c.gr, c.gg, c.B, S, c.OC,
			      2);
	nn_conv3x3_backward(dx, dcw, NULL, dcols, dh1, c.cols, c.cw, c.B, c.H, c.W, c.C,
			    c.OC, 1);
	check_grad("chain dx", dx, c.x, (long)c.B * S * c.C, 1e-2f, net_loss, &c);
	check_grad("chain dconv_w", dcw, c.cw, 9L * c.C * c.OC, 1e-2f, net_loss, &c);
}

#define T(f) cmocka_unit_test_teardown(f, free_all)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_linear_forward_naive),
		T(test_linear_grad),
		T(test_linear_accumulate_and_null),
		T(test_conv_out_size),
		T(test_conv_against_naive),
		T(test_conv_grad_stride1),
		T(test_conv_grad_stride2),
		T(test_conv_accumulate_and_null),
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
		T(test_relu),
		T(test_avgpool),
		T(test_chain),
	};
	int failed = cmocka_run_group_tests(tests, NULL, NULL);
	printf("worst gradient error over all checks: %.3g (tolerance %g)\n", worst_err,
	       TOL);
	return failed;
}
