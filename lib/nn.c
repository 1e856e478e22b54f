/*
 * nn.c — linear layer, ReLU and global average pooling (see include/byol/nn.h).
 *
 * Dimension legend:
 *   B   samples (rows of a linear layer)
 *   S   spatial positions per sample
 *   C   channels
 *   IN, OUT  input / output features of a linear layer
 *
 * Every reduction runs in a fixed order (no threads besides OpenBLAS's), so the
 * same inputs give the same bits on every worker. Sums over rows are carried in
 * double, one accumulator per column, on a fixed-size stack tile of columns.
 */
#include "byol/nn.h"

#include <cblas.h>
#include <string.h>

/* Columns per stack tile of double accumulators (4 KiB). */
#define COL_TILE 512

/* Element-wise loops split into a part whose trip count is a multiple of 8 and
 * a scalar tail, over restrict pointers, in functions kept out of line: the
 * shape gcc's -O2 vectoriser accepts (see nn_norm.c). */
#define ELEMENTS(i, n, body)                       \
	do {                                       \
		const long n8_ = (n) & ~7L;        \
		for (long i = 0; i < n8_; i++) {   \
			body;                      \
		}                                  \
		for (long i = n8_; i < (n); i++) { \
			body;                      \
		}                                  \
	} while (0)
#define KERNEL __attribute__((noinline)) static void

KERNEL k_acc(double *restrict acc, const float *restrict x, long n)
{
	ELEMENTS(i, n, acc[i] += x[i]);
}

KERNEL k_axpy(float *restrict y, const float *restrict x, float a, long n)
{
	ELEMENTS(i, n, y[i] += a * x[i]);
}

/* x < 0 ? 0 : x, so that a NaN passes through for the NaN checks to see. */
KERNEL k_relu(float *restrict y, const float *restrict x, long n)
{
	ELEMENTS(i, n, y[i] = x[i] < 0.0f ? 0.0f : x[i]);
}

KERNEL k_relu_inplace(float *restrict y, long n)
{
	ELEMENTS(i, n, y[i] = y[i] < 0.0f ? 0.0f : y[i]);
}

KERNEL k_relu_back(float *restrict dx, const float *restrict dy, const float *restrict y,
		   long n)
{
	ELEMENTS(i, n, const float g = dy[i]; dx[i] += y[i] > 0.0f ? g : 0.0f);
}

/* db (C) += sum over the R rows of m (R, C), accumulated in double. */
static void colsum_acc(float *db, const float *m, long R, int C)
{
	double acc[COL_TILE];
	for (int c0 = 0; c0 < C; c0 += COL_TILE) {
		int n = C - c0 < COL_TILE ? C - c0 : COL_TILE;
		for (int j = 0; j < n; j++)
			acc[j] = 0.0;
		for (long r = 0; r < R; r++)
			k_acc(acc, m + r * C + c0, n);
		for (int j = 0; j < n; j++)
			db[c0 + j] += (float)acc[j];
	}
}

void nn_linear_forward(float *out, const float *inp, const float *w, const float *b,
		       int B, int IN, int OUT)
{
	// out (B, OUT), inp (B, IN), w (OUT, IN), b (OUT)
	float beta = 0.0f;
	if (b) {
		for (int r = 0; r < B; r++)
			memcpy(out + (long)r * OUT, b, sizeof(float) * OUT);
		beta = 1.0f;
	}
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, OUT, IN, 1.0f, inp, IN, w,
		    IN, beta, out, OUT);
}

void nn_linear_backward(float *dinp, float *dw, float *db, const float *dout,
			const float *inp, const float *w, int B, int IN, int OUT)
{
	// dinp (B, IN), dw (OUT, IN), db (OUT), dout (B, OUT), inp (B, IN), w (OUT, IN)
	if (dinp)
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, IN, OUT, 1.0f,
			    dout, OUT, w, IN, 1.0f, dinp, IN);
	if (dw)
		cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OUT, IN, B, 1.0f,
			    dout, OUT, inp, IN, 1.0f, dw, IN);
	if (db)
		colsum_acc(db, dout, B, OUT);
}

void nn_relu_forward(float *out, const float *inp, long n)
{
	if (out == inp)
		k_relu_inplace(out, n);
	else
		k_relu(out, inp, n);
}

void nn_relu_backward(float *dinp, const float *dout, const float *out, long n)
{
	if (!dinp)
		return;
	k_relu_back(dinp, dout, out, n);
}

void nn_avgpool_forward(float *out, const float *inp, int B, int S, int C)
{
	// out (B, C), inp (B, S, C)
	double acc[COL_TILE];
	for (int b = 0; b < B; b++) {
		const float *x = inp + (long)b * S * C;
		for (int c0 = 0; c0 < C; c0 += COL_TILE) {
			int n = C - c0 < COL_TILE ? C - c0 : COL_TILE;
			for (int j = 0; j < n; j++)
				acc[j] = 0.0;
			for (int s = 0; s < S; s++)
				k_acc(acc, x + (long)s * C + c0, n);
			for (int j = 0; j < n; j++)
				out[(long)b * C + c0 + j] = (float)(acc[j] / S);
		}
	}
}

void nn_avgpool_backward(float *dinp, const float *dout, int B, int S, int C)
{
	// dinp (B, S, C), dout (B, C)
	if (!dinp)
		return;
	const float inv = 1.0f / (float)S;
	for (int b = 0; b < B; b++) {
		const float *g = dout + (long)b * C;
		for (int s = 0; s < S; s++)
			k_axpy(dinp + ((long)b * S + s) * C, g, inv, C);
	}
}
