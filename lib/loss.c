/*
 * loss.c — BYOL's cosine regression, SimCLR's NT-Xent, and the collapse figure.
 *
 * Dimension legend:
 *   B   rows of one view
 *   D   projection dimension
 *   N   2B, the anchors of NT-Xent (rows of z1, then rows of z2)
 *
 * Row norms are clamped below at LOSS_NORM_EPS, as F.normalize does: a zero row
 * normalises to zero instead of NaN, and its gradient stays finite.
 */
#include "byol/loss.h"

#include <cblas.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>

#define LOSS_NORM_EPS 1e-12

/* The clamped l2 norm of one row, in double. */
static double row_norm(const float *x, int D)
{
	double s = 0.0;
	for (int d = 0; d < D; d++)
		s += (double)x[d] * x[d];
	double n = sqrt(s);
	return n > LOSS_NORM_EPS ? n : LOSS_NORM_EPS;
}

/* True when the norm was clamped (the row is treated as having constant norm). */
static int norm_clamped(double n)
{
	return n <= LOSS_NORM_EPS;
}

double loss_cosine(float *dp, const float *p, const float *z, int B, int D)
{
	double total = 0.0;
	for (int i = 0; i < B; i++) {
		const float *pi = p + (size_t)i * D; // (D)
		const float *zi = z + (size_t)i * D; // (D)
		double np = row_norm(pi, D), nz = row_norm(zi, D);
		double dot = 0.0;
		for (int d = 0; d < D; d++)
			dot += (double)pi[d] * zi[d];
		double cos = dot / (np * nz);
		total += 2.0 - 2.0 * cos;
		if (!dp)
			continue;
		/* d cos / dp = z / (|p| |z|) - cos * p / |p|^2; the second term
		 * vanishes where |p| is clamped to a constant. */
		double a = -2.0 / (np * nz);
		double b = norm_clamped(np) ? 0.0 : 2.0 * cos / (np * np);
		float *dpi = dp + (size_t)i * D; // (D)
		for (int d = 0; d < D; d++)
			dpi[d] += (float)(a * zi[d] + b * pi[d]);
	}
	return total;
}

long loss_ntxent_scratch(int B, int D)
{
	long N = 2L * B;
	return 2 * N * D + N * N;
}

/* Row r of the stacked (N, D) matrix [z1; z2]. */
static const float *stacked_row(const float *z1, const float *z2, int B, int D, int r)
{
	return r < B ? z1 + (size_t)r * D : z2 + (size_t)(r - B) * D;
}

double loss_ntxent(float *dz1, float *dz2, const float *z1, const float *z2, int B,
		   int D, float temperature, float *scratch)
{
	if (B < 1)
		return 0.0;
	const int N = 2 * B;
	float *u = scratch;                       // (N, D) l2-normalised rows
	float *s = u + (size_t)N * D;             // (N, N) similarities, then dL/dS
	float *du = s + (size_t)N * N;            // (N, D) dL/du
	const double invt = 1.0 / temperature;

	for (int r = 0; r < N; r++) {
		const float *zr = stacked_row(z1, z2, B, D, r);
		double inv = 1.0 / row_norm(zr, D);
		for (int d = 0; d < D; d++)
			u[(size_t)r * D + d] = (float)(zr[d] * inv);
	}
	/* s = u u^T (cosine similarities; the 1/temperature is applied below). */
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, N, D, 1.0f, u, D, u, D,
		    0.0f, s, N);

	/* Per anchor a: loss_a = -s[a,pos]/t + logsumexp_{j != a} s[a,j]/t.
	 * dloss_a / d(s[a,j]/t) = softmax_j - [j == pos], and 0 at j == a. */
	const int want_grad = dz1 || dz2;
	double total = 0.0;
	for (int a = 0; a < N; a++) {
		float *sa = s + (size_t)a * N; // (N)
		int pos = a < B ? a + B : a - B;
		double mx = -INFINITY;
		for (int j = 0; j < N; j++)
			if (j != a && sa[j] * invt > mx)
				mx = sa[j] * invt;
		double sum = 0.0;
		for (int j = 0; j < N; j++)
			if (j != a)
				sum += exp(sa[j] * invt - mx);
		double lse = mx + log(sum);
		total += lse - sa[pos] * invt;
		if (!want_grad)
			continue;
		for (int j = 0; j < N; j++)
			sa[j] = j == a ? 0.0f : (float)exp(sa[j] * invt - lse);
		sa[pos] -= 1.0f;
	}
	if (!want_grad)
		return total;

	/* With G = dL/d(s/t): dL/du = (G + G^T) u / t. Symmetrise G in place. */
	for (int i = 0; i < N; i++)
		for (int j = i + 1; j < N; j++) {
			float g = s[(size_t)i * N + j] + s[(size_t)j * N + i];
			s[(size_t)i * N + j] = g;
			s[(size_t)j * N + i] = g;
		}
	for (int i = 0; i < N; i++)
		s[(size_t)i * N + i] *= 2.0f;
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, D, N, (float)invt, s, N,
		    u, D, 0.0f, du, D);

	/* Through the normalisation: dz = (du - (du . u) u) / |z| (unclamped rows). */
	for (int r = 0; r < N; r++) {
		float *dz = r < B ? dz1 : dz2;
		if (!dz)
			continue;
		dz += (size_t)(r < B ? r : r - B) * D;
		const float *zr = stacked_row(z1, z2, B, D, r);
		const float *ur = u + (size_t)r * D;   // (D)
		const float *dur = du + (size_t)r * D; // (D)
		double n = row_norm(zr, D);
		double proj = 0.0;
		if (!norm_clamped(n))
			for (int d = 0; d < D; d++)
				proj += (double)dur[d] * ur[d];
		for (int d = 0; d < D; d++)
			dz[d] += (float)((dur[d] - proj * ur[d]) / n);
	}
	return total;
}

double loss_collapse(const float *z, int B, int D)
{
	if (B < 2 || D < 1)
		return 0.0;
	/* Per dimension: the sample standard deviation (divisor B - 1) over the
	 * rows of the normalised z, two passes in double. */
	double *mean = calloc((size_t)2 * D, sizeof(double)); // (D), then (D) sq. dev.
	if (!mean)
		return NAN;
	double *m2 = mean + D;
	for (int i = 0; i < B; i++) {
		const float *zi = z + (size_t)i * D; // (D)
		double inv = 1.0 / row_norm(zi, D);
		for (int d = 0; d < D; d++)
			mean[d] += zi[d] * inv;
	}
	for (int d = 0; d < D; d++)
		mean[d] /= B;
	for (int i = 0; i < B; i++) {
		const float *zi = z + (size_t)i * D; // (D)
		double inv = 1.0 / row_norm(zi, D);
		for (int d = 0; d < D; d++) {
			double e = zi[d] * inv - mean[d];
			m2[d] += e * e;
		}
	}
	double acc = 0.0;
	for (int d = 0; d < D; d++)
		acc += sqrt(m2[d] / (B - 1));
	free(mean);
	return acc / D * sqrt((double)D);
}
