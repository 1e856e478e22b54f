/*
 * nn_norm.c — batch norm, group norm (layer norm is G = 1) and weight
 * standardisation (see include/byol/nn.h).
 *
 * Dimension legend:
 *   N   rows of a batch norm (= B * S)
 *   B   samples, S positions per sample, C channels, G groups, CG = C / G
 *   OUT, FAN  output units and fan-in of a standardised weight
 *
 * Batch norm over (N, C) is group norm of one sample with S = N and G = C, so
 * both run through the same per-sample kernels below. A sample (S, C) is
 * walked in blocks of whole groups ([c0, c1) with at most TILE channels, or
 * exactly one group when CG > TILE) and each block in chunks of at most TILE
 * channels: rows are read contiguously over a chunk's channels, one double
 * accumulator per channel, then the channels' sums are folded into their
 * groups. A group norm with S = 1 (the layer norm of an MLP), where every
 * group is one contiguous span of a row, takes a shorter path along the spans
 * when gamma and beta are given. Statistics are two-pass (mean, then the sum
 * of squared deviations), in double; the variance is biased. All orders of
 * summation are fixed and nothing runs on other threads, so the results are
 * the same bits on every run and every machine with the same float semantics
 * (vector width does not change them: no reduction is reassociated).
 *
 * Scratch lives on the stack in tiles of TILE channels (about 16 KiB at most).
 */
#include "byol/nn.h"

#include <math.h>
#include <stddef.h>

#define TILE 256

static int imin(int a, int b)
{
	return a < b ? a : b;
}

/* Width of the blocks of whole groups a sample is cut into. */
static int block_width(int CG)
{
	return CG <= TILE ? (TILE / CG) * CG : CG;
}

/* Sum of a[0..n) with four partial sums (a fixed order). */
static double sum_d(const double *a, int n)
{
	double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
	int i = 0;
	for (; i + 4 <= n; i += 4) {
		s0 += a[i];
		s1 += a[i + 1];
		s2 += a[i + 2];
		s3 += a[i + 3];
	}
	for (; i < n; i++)
		s0 += a[i];
	return (s0 + s1) + (s2 + s3);
}

/* gs[g] += the per-channel sums acc[0..n) of the channels off .. off+n-1 of a
 * block, channel j belonging to group (off + j) / CG of the block. */
static void fold(double *gs, const double *acc, int off, int n, int CG)
{
	if (CG == 1) {
		for (int j = 0; j < n; j++)
			gs[off + j] += acc[j];
		return;
	}
	for (int j = 0; j < n;) {
		int g = (off + j) / CG;
		int end = imin(n, (g + 1) * CG - off);
		gs[g] += sum_d(acc + j, end - j);
		j = end;
	}
}

/* The reciprocal standard deviation, from the float variance so that
 * evaluation mode with the batch's own statistics gives the same bits. */
static float rstd_of(float var)
{
	return (float)(1.0 / sqrt((double)var + (double)NN_EPS));
}

/*
 * Row kernels over the n channels of one chunk. Every channel is independent,
 * so the loop is split into a part whose trip count is a multiple of 8 and a
 * scalar tail: with restrict pointers, that is the shape gcc's -O2 vectoriser
 * accepts, and the results are the same bits either way. The kernels are kept
 * out of line (KERNEL), where their restrict qualifiers survive; inlined, the
 * loops would need run-time alias checks that -O2 does not emit. A call costs
 * little next to a row of channels.
 */
#define KERNEL __attribute__((noinline)) static void
#define CHANNELS(j, n, body)                      \
	do {                                      \
		const int n8_ = (n) & ~7;         \
		for (int j = 0; j < n8_; j++) {   \
			body;                     \
		}                                 \
		for (int j = n8_; j < (n); j++) { \
			body;                     \
		}                                 \
	} while (0)

KERNEL k_sum(double *restrict acc, const float *restrict x, int n)
{
	CHANNELS(j, n, acc[j] += x[j]);
}

KERNEL k_sqdev(double *restrict acc, const float *restrict x, const float *restrict m,
	       int n)
{
	CHANNELS(j, n, double d = (double)x[j] - m[j]; acc[j] += d * d);
}

KERNEL k_norm(float *restrict o, const float *restrict x, const float *restrict m,
	      const float *restrict r, const float *restrict g, const float *restrict b,
	      int n)
{
	CHANNELS(j, n, o[j] = (x[j] - m[j]) * r[j] * g[j] + b[j]);
}

/* The same in place (o == x). */
KERNEL k_norm_inplace(float *restrict o, const float *restrict m, const float *restrict r,
		      const float *restrict g, const float *restrict b, int n)
{
	CHANNELS(j, n, o[j] = (o[j] - m[j]) * r[j] * g[j] + b[j]);
}

KERNEL k_bsums(double *restrict a1, double *restrict a2, const float *restrict d,
	       const float *restrict x, const float *restrict m, const float *restrict r,
	       int n)
{
	CHANNELS(j, n, float xhat = (x[j] - m[j]) * r[j]; a1[j] += d[j];
		 a2[j] += (double)d[j] * xhat);
}

KERNEL k_bdx(float *restrict o, const float *restrict d, const float *restrict x,
	     const float *restrict m, const float *restrict k1, const float *restrict k2,
	     const float *restrict k3, int n)
{
	CHANNELS(j, n, o[j] += k1[j] * d[j] + k2[j] + k3[j] * (x[j] - m[j]));
}

/* out (R, n) = (x - m) * r * g + b row by row, rows ld floats apart; out may
 * be x. */
static void normalise(float *out, const float *x, long R, int ld, int n, const float *m,
		      const float *r, const float *g, const float *b)
{
	for (long s = 0; s < R; s++) {
		if (out == x)
			k_norm_inplace(out + s * ld, m, r, g, b, n);
		else
			k_norm(out + s * ld, x + s * ld, m, r, g, b, n);
	}
}

/* Per-channel copies of the group mean and rstd of channels k0 .. k0+n-1 of
 * the block starting at channel c0, whose first group's statistics are at
 * mean[0], rstd[0]. */
static void expand(float *mc, float *rc, const float *mean, const float *rstd, int c0,
		   int k0, int n, int CG)
{
	int g = (k0 - c0) / CG, k = (k0 - c0) % CG;
	for (int j = 0; j < n; j++) {
		mc[j] = mean[g];
		rc[j] = rstd[g];
		if (++k == CG)
			k = 0, g++;
	}
}

/* The gamma and beta of channels k0 .. k0+n-1: pointers into gamma and beta,
 * or into gc, bc filled with 1 and 0 when gamma or beta is NULL. */
static void affine(const float **g, const float **b, float *gc, float *bc,
		   const float *gamma, const float *beta, int k0, int n)
{
	*g = gamma ? gamma + k0 : gc;
	*b = beta ? beta + k0 : bc;
	for (int j = 0; !gamma && j < n; j++)
		gc[j] = 1.0f;
	for (int j = 0; !beta && j < n; j++)
		bc[j] = 0.0f;
}

/* Statistics and output of one sample x (S, C) with G groups: mean, rstd (G);
 * var (G) or NULL; out (S, C). */
static void norm_forward(float *out, float *mean, float *rstd, float *var, const float *x,
			 const float *gamma, const float *beta, long S, int C, int G)
{
	const int CG = C / G;
	const int bw = block_width(CG);
	const double cnt = (double)S * CG;
	double acc[TILE], gs[TILE];
	float mc[TILE], rc[TILE], gc[TILE], bc[TILE];

	for (int c0 = 0; c0 < C; c0 += bw) {
		const int c1 = imin(c0 + bw, C), g0 = c0 / CG, ng = (c1 - c0) / CG;

		/* pass 1: the mean */
		for (int g = 0; g < ng; g++)
			gs[g] = 0.0;
		for (int k0 = c0; k0 < c1; k0 += TILE) {
			const int n = imin(TILE, c1 - k0);
			for (int j = 0; j < n; j++)
				acc[j] = 0.0;
			for (long s = 0; s < S; s++)
				k_sum(acc, x + s * C + k0, n);
			fold(gs, acc, k0 - c0, n, CG);
		}
		for (int g = 0; g < ng; g++)
			mean[g0 + g] = (float)(gs[g] / cnt);

		/* pass 2: the biased variance around the stored mean */
		for (int g = 0; g < ng; g++)
			gs[g] = 0.0;
		for (int k0 = c0; k0 < c1; k0 += TILE) {
			const int n = imin(TILE, c1 - k0);
			expand(mc, rc, mean + g0, mean + g0, c0, k0, n, CG);
			for (int j = 0; j < n; j++)
				acc[j] = 0.0;
			for (long s = 0; s < S; s++)
				k_sqdev(acc, x + s * C + k0, mc, n);
			fold(gs, acc, k0 - c0, n, CG);
		}
		for (int g = 0; g < ng; g++) {
			float v = (float)(gs[g] / cnt);
			if (var)
				var[g0 + g] = v;
			rstd[g0 + g] = rstd_of(v);
		}

		/* pass 3: the output */
		for (int k0 = c0; k0 < c1; k0 += TILE) {
			const int n = imin(TILE, c1 - k0);
			const float *gk, *bk;
			expand(mc, rc, mean + g0, rstd + g0, c0, k0, n, CG);
			affine(&gk, &bk, gc, bc, gamma, beta, k0, n);
			normalise(out + k0, x + k0, S, C, n, mc, rc, gk, bk);
		}
	}
}

/* Backward of norm_forward for one sample: dinp (S, C) +=, dgamma, dbeta (C) +=
 * (each may be NULL); dout, x (S, C); mean, rstd (G). */
static void norm_backward(float *dinp, float *dgamma, float *dbeta, const float *dout,
			  const float *x, const float *mean, const float *rstd,
			  const float *gamma, long S, int C, int G)
{
	const int CG = C / G;
	const int bw = block_width(CG);
	const double cnt = (double)S * CG;
	double a1[TILE], a2[TILE], ga[TILE], gb[TILE];
	float mc[TILE], rc[TILE], k1[TILE], k2[TILE], k3[TILE], f2[TILE], f3[TILE];

	for (int c0 = 0; c0 < C; c0 += bw) {
		const int c1 = imin(c0 + bw, C), g0 = c0 / CG, ng = (c1 - c0) / CG;

		/* per channel: sum dout, sum dout * xhat; per group: those times gamma */
		for (int g = 0; g < ng; g++)
			ga[g] = gb[g] = 0.0;
		for (int k0 = c0; k0 < c1; k0 += TILE) {
			const int n = imin(TILE, c1 - k0);
			expand(mc, rc, mean + g0, rstd + g0, c0, k0, n, CG);
			for (int j = 0; j < n; j++)
				a1[j] = a2[j] = 0.0;
			for (long s = 0; s < S; s++)
				k_bsums(a1, a2, dout + s * C + k0, x + s * C + k0, mc, rc,
					n);
			for (int j = 0; j < n; j++) {
				if (dbeta)
					dbeta[k0 + j] += (float)a1[j];
				if (dgamma)
					dgamma[k0 + j] += (float)a2[j];
				if (gamma) {
					a1[j] *= gamma[k0 + j];
					a2[j] *= gamma[k0 + j];
				}
			}
			fold(ga, a1, k0 - c0, n, CG);
			fold(gb, a2, k0 - c0, n, CG);
		}
		if (!dinp)
			continue;

		/* dx = r * (gamma * dout - ga / cnt - xhat * gb / cnt)
		 *    = k1 * dout + k2 + k3 * (x - mean) */
		for (int g = 0; g < ng; g++) {
			const double r = rstd[g0 + g];
			f2[g] = (float)(-r * ga[g] / cnt);
			f3[g] = (float)(-r * r * gb[g] / cnt);
		}
		for (int k0 = c0; k0 < c1; k0 += TILE) {
			const int n = imin(TILE, c1 - k0);
			int g = (k0 - c0) / CG, k = (k0 - c0) % CG;
			for (int j = 0; j < n; j++) {
				mc[j] = mean[g0 + g];
				k1[j] =
				    gamma ? rstd[g0 + g] * gamma[k0 + j] : rstd[g0 + g];
				k2[j] = f2[g];
				k3[j] = f3[g];
				if (++k == CG)
					k = 0, g++;
			}
			for (long s = 0; s < S; s++)
				k_bdx(dinp + s * C + k0, dout + s * C + k0,
				      x + s * C + k0, mc, k1, k2, k3, n);
		}
	}
}

/* Sums over a row of n floats in 8 double lanes, added up in a fixed order. */
static double lanes_total(const double *l)
{
	return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
}

static double row_sum(const float *restrict x, int n)
{
	double l[8] = {0};
	int i = 0;
	for (; i + 8 <= n; i += 8)
		for (int u = 0; u < 8; u++)
			l[u] += x[i + u];
	for (; i < n; i++)
		l[i & 7] += x[i];
	return lanes_total(l);
}

static double row_sqdev(const float *restrict x, float m, int n)
{
	double l[8] = {0};
	int i = 0;
	for (; i + 8 <= n; i += 8)
		for (int u = 0; u < 8; u++) {
			double d = (double)x[i + u] - m;
			l[u] += d * d;
		}
	for (; i < n; i++) {
		double d = (double)x[i] - m;
		l[i & 7] += d * d;
	}
	return lanes_total(l);
}

/*
 * One sample with S = 1 (the layer norm of an MLP) has each group as one
 * contiguous span of CG floats: statistics and sums run along the span in 8
 * double lanes, without the per-channel accumulators of the general path.
 */
KERNEL k_affine(float *restrict o, const float *restrict x, float m, float r,
		const float *restrict g, const float *restrict b, int n)
{
	CHANNELS(j, n, o[j] = (x[j] - m) * r * g[j] + b[j]);
}

static void span_sums(double *sa, double *sb, const float *restrict d,
		      const float *restrict x, const float *restrict g, float m, float r,
		      int n)
{
	double la[8] = {0}, lb[8] = {0};
	int i = 0;
	for (; i + 8 <= n; i += 8)
		for (int u = 0; u < 8; u++) {
			const double dg = (double)d[i + u] * g[i + u];
			la[u] += dg;
			lb[u] += dg * ((x[i + u] - m) * r);
		}
	for (; i < n; i++) {
		const double dg = (double)d[i] * g[i];
		la[i & 7] += dg;
		lb[i & 7] += dg * ((x[i] - m) * r);
	}
	*sa = lanes_total(la);
	*sb = lanes_total(lb);
}

KERNEL k_dgamma_dbeta(float *restrict dgamma, float *restrict dbeta,
		      const float *restrict d, const float *restrict x, float m, float r,
		      int n)
{
	CHANNELS(j, n, dbeta[j] += d[j]; dgamma[j] += d[j] * ((x[j] - m) * r));
}

KERNEL k_span_dx(float *restrict o, const float *restrict d, const float *restrict x,
		 const float *restrict g, float m, float r, float k2, float k3, int n)
{
	CHANNELS(j, n, o[j] += r * g[j] * d[j] + k2 + k3 * (x[j] - m));
}

/* norm_forward for S = 1 with gamma and beta. */
static void span_forward(float *out, float *mean, float *rstd, const float *x,
			 const float *gamma, const float *beta, int C, int G)
{
	const int CG = C / G;
	for (int g = 0; g < G; g++) {
		const float *xg = x + (long)g * CG;
		const float m = (float)(row_sum(xg, CG) / CG);
		const float r = rstd_of((float)(row_sqdev(xg, m, CG) / CG));
		mean[g] = m;
		rstd[g] = r;
		k_affine(out + (long)g * CG, xg, m, r, gamma + (long)g * CG,
			 beta + (long)g * CG, CG);
	}
}

/* norm_backward for S = 1 with gamma. */
static void span_backward(float *dinp, float *dgamma, float *dbeta, const float *dout,
			  const float *x, const float *mean, const float *rstd,
			  const float *gamma, int C, int G)
{
	const int CG = C / G;
	for (int g = 0; g < G; g++) {
		const long o = (long)g * CG;
		const float m = mean[g], r = rstd[g];
		if (dgamma && dbeta) {
			k_dgamma_dbeta(dgamma + o, dbeta + o, dout + o, x + o, m, r, CG);
		} else {
			for (int j = 0; dbeta && j < CG; j++)
				dbeta[o + j] += dout[o + j];
			for (int j = 0; dgamma && j < CG; j++)
				dgamma[o + j] += dout[o + j] * ((x[o + j] - m) * r);
		}
		if (!dinp)
			continue;
		double sa, sb;
		span_sums(&sa, &sb, dout + o, x + o, gamma + o, m, r, CG);
		const float k2 = (float)(-(double)r * sa / CG);
		const float k3 = (float)(-(double)r * r * sb / CG);
		k_span_dx(dinp + o, dout + o, x + o, gamma + o, m, r, k2, k3, CG);
	}
}

void nn_batchnorm_forward(float *out, float *mean, float *rstd, float *var,
			  const float *inp, const float *gamma, const float *beta, int N,
			  int C)
{
	norm_forward(out, mean, rstd, var, inp, gamma, beta, N, C, C);
}

void nn_batchnorm_backward(float *dinp, float *dgamma, float *dbeta, const float *dout,
			   const float *inp, const float *mean, const float *rstd,
			   const float *gamma, int N, int C)
{
	if (!dinp && !dgamma && !dbeta)
		return;
	norm_backward(dinp, dgamma, dbeta, dout, inp, mean, rstd, gamma, N, C, C);
}

void nn_batchnorm_infer(float *out, const float *inp, const float *run_mean,
			const float *run_var, const float *gamma, const float *beta,
			int N, int C)
{
	float rc[TILE], gc[TILE], bc[TILE];
	for (int k0 = 0; k0 < C; k0 += TILE) {
		const int n = imin(TILE, C - k0);
		const float *gk, *bk;
		for (int j = 0; j < n; j++)
			rc[j] = rstd_of(run_var[k0 + j]);
		affine(&gk, &bk, gc, bc, gamma, beta, k0, n);
		normalise(out + k0, inp + k0, N, C, n, run_mean + k0, rc, gk, bk);
	}
}

void nn_groupnorm_forward(float *out, float *mean, float *rstd, const float *inp,
			  const float *gamma, const float *beta, int B, int S, int C,
			  int G)
{
	const long step = (long)S * C;
	const int span = S == 1 && gamma && beta;
	for (int b = 0; b < B; b++) {
		if (span)
			span_forward(out + b * step, mean + (long)b * G,
				     rstd + (long)b * G, inp + b * step, gamma, beta, C,
				     G);
		else
			norm_forward(out + b * step, mean + (long)b * G,
				     rstd + (long)b * G, NULL, inp + b * step, gamma,
				     beta, S, C, G);
	}
}

void nn_groupnorm_backward(float *dinp, float *dgamma, float *dbeta, const float *dout,
			   const float *inp, const float *mean, const float *rstd,
			   const float *gamma, int B, int S, int C, int G)
{
	if (!dinp && !dgamma && !dbeta)
		return;
	const long step = (long)S * C;
	for (int b = 0; b < B; b++) {
		float *dx = dinp ? dinp + b * step : NULL;
		if (S == 1 && gamma)
			span_backward(dx, dgamma, dbeta, dout + b * step, inp + b * step,
				      mean + (long)b * G, rstd + (long)b * G, gamma, C,
				      G);
		else
			norm_backward(dx, dgamma, dbeta, dout + b * step, inp + b * step,
				      mean + (long)b * G, rstd + (long)b * G, gamma, S, C,
				      G);
	}
}

/* ---- weight standardisation: a layer norm of each row of w, no affine ---- */

KERNEL k_standardise(float *restrict y, const float *restrict x, float m, float r, int n)
{
	CHANNELS(i, n, y[i] = (x[i] - m) * r);
}

KERNEL k_wstd_dw(float *restrict d, const float *restrict g, const float *restrict y,
		 float k1, float k2, float k3, int n)
{
	CHANNELS(i, n, d[i] += k1 * g[i] + k2 + k3 * y[i]);
}

void nn_wstd_forward(float *what, float *mean, float *rstd, const float *w, int OUT,
		     int FAN)
{
	// what, w (OUT, FAN); mean, rstd (OUT)
	for (int o = 0; o < OUT; o++) {
		const float *restrict x = w + (long)o * FAN;
		float *restrict y = what + (long)o * FAN;
		const float m = (float)(row_sum(x, FAN) / FAN);
		const float r = rstd_of((float)(row_sqdev(x, m, FAN) / FAN));
		k_standardise(y, x, m, r, FAN);
		mean[o] = m;
		rstd[o] = r;
	}
}

void nn_wstd_backward(float *dw, const float *dwhat, const float *what, const float *rstd,
		      int OUT, int FAN)
{
	// dw, dwhat, what (OUT, FAN); rstd (OUT)
	if (!dw)
		return;
	for (int o = 0; o < OUT; o++) {
		const float *restrict g = dwhat + (long)o * FAN;
		const float *restrict y = what + (long)o * FAN;
		float *restrict d = dw + (long)o * FAN;
		double la[8] = {0}, lb[8] = {0};
		int i = 0;
		for (; i + 8 <= FAN; i += 8)
			for (int u = 0; u < 8; u++) {
				la[u] += g[i + u];
				lb[u] += (double)g[i + u] * y[i + u];
			}
		for (; i < FAN; i++) {
			la[i & 7] += g[i];
			lb[i & 7] += (double)g[i] * y[i];
		}
		/* dw = r * (dwhat - mean(dwhat) - what * mean(dwhat * what)) */
		const double r = rstd[o];
		const float k1 = (float)r;
		const float k2 = (float)(-r * lanes_total(la) / FAN);
		const float k3 = (float)(-r * lanes_total(lb) / FAN);
		k_wstd_dw(d, g, y, k1, k2, k3, FAN);
	}
}
