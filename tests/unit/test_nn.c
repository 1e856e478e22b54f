/*
 * test_nn.c — the layers of nn.h but the norms (test_nn_norm.c has those):
 * linear, conv3x3, relu and average pooling, with finite-difference proofs of
 * every backward pass, accumulation and NULL-gradient semantics, and forward
 * passes against naive double-precision references; and a small network end to
 * end, conv -> GN -> relu -> pool -> linear -> BN.
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
		T(test_relu),
		T(test_avgpool),
		T(test_chain),
	};
	return nn_check_report(cmocka_run_group_tests(tests, NULL, NULL));
}
