/*
 * nn_check.h — what the layer tests share (test-only): a local generator,
 * allocations freed after each test, and the finite-difference gradient check.
 *
 * Gradient checks use the loss L = sum(out * P) for a random projection P, so
 * that dL/dout = P. The numerical gradient is a central difference of the float
 * forward pass with L accumulated in double, divided by the step actually taken
 * in float. The error of analytic a against numerical n is
 *     max_i |a_i - n_i| / max(|a_i|, |n_i|, 1e-2 * max_j |n_j|)
 * and must stay under TOL; the norm tests also show that the same measure flags
 * gradients with one term of the formula left out.
 */
#ifndef BYOL_NN_CHECK_H
#define BYOL_NN_CHECK_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOL 1e-2

/* ---- helpers: a local generator, allocations freed after each test ---- */

static uint64_t rs;

static inline void seed(uint64_t s)
{
	rs = (s + 1) * 0x9E3779B97F4A7C15ull;
}

static inline uint32_t next_u32(void)
{
	/* xorshift64* */
	rs ^= rs >> 12;
	rs ^= rs << 25;
	rs ^= rs >> 27;
	return (uint32_t)((rs * 0x2545F4914F6CDD1Dull) >> 32);
}

static inline double unif(void)
{
	return (next_u32() + 0.5) / 4294967296.0;
}

static inline float gauss(void)
{
	return (float)(sqrt(-2.0 * log(unif())) * cos(2.0 * M_PI * unif()));
}

static void *blocks[256];
static int nblocks;

/* n zeroed elements of `size` bytes, freed by free_all after the test */
static inline void *zalloc(long n, size_t size)
{
	assert_true(nblocks < 256);
	void *p = calloc((size_t)n, size);
	assert_non_null(p);
	blocks[nblocks++] = p;
	return p;
}

static inline float *fa(long n)
{
	return zalloc(n, sizeof(float));
}

static inline double *da(long n)
{
	return zalloc(n, sizeof(double));
}

static inline int free_all(void **state)
{
	(void)state;
	while (nblocks > 0)
		free(blocks[--nblocks]);
	return 0;
}

/* n floats, normal * scale + shift */
static inline float *randn(long n, float scale, float shift)
{
	float *p = fa(n);
	for (long i = 0; i < n; i++)
		p[i] = gauss() * scale + shift;
	return p;
}

static inline float *copy(const float *src, long n)
{
	float *p = fa(n);
	memcpy(p, src, sizeof(float) * n);
	return p;
}

static inline double proj(const float *out, const float *P, long n)
{
	double s = 0.0;
	for (long i = 0; i < n; i++)
		s += (double)out[i] * P[i];
	return s;
}

/* two == 2 * one, from backward twice and once into zeroed gradients. x + x is
 * exact in float; tol is for gradients summed from several terms added one by
 * one onto the existing value (sgemm with beta = 1, col2im, per-sample sums). */
static inline void assert_twice(const float *two, const float *one, long n, float tol)
{
	for (long i = 0; i < n; i++)
		if (!(fabsf(two[i] - 2 * one[i]) <= tol * (1 + fabsf(one[i]))))
			fail_msg("[%ld]: %.9g after two calls, %.9g after one", i, two[i],
				 one[i]);
}

static inline void assert_near(const float *got, const double *want, long n, double tol)
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

static inline void numgrad(double *num, float *p, long n, float eps, loss_fn f, void *ctx)
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
static inline double maxabs(const double *v, long n)
{
	double m = 0.0;
	for (long i = 0; i < n; i++)
		if (!isnan(v[i]))
			m = fmax(m, fabs(v[i]));
	return m;
}

static inline double grad_err_d(const double *ana, const double *num, long n)
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

static inline double grad_err(const float *ana, const double *num, long n)
{
	double *a = da(n);
	for (long i = 0; i < n; i++)
		a[i] = ana[i];
	return grad_err_d(a, num, n);
}

static double worst_err;

/* Checks the analytic gradient ana (n) of f with respect to p (n); returns the
 * numerical gradient for further checks. */
static inline double *check_grad(const char *what, const float *ana, float *p, long n,
				 float eps, loss_fn f, void *ctx)
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

/* The end of a test binary's main: the worst gradient error seen, then the
 * number of failed tests as the exit status. */
static inline int nn_check_report(int failed)
{
	printf("worst gradient error over all checks: %.3g (tolerance %g)\n", worst_err,
	       TOL);
	return failed;
}

#endif
