/*
 * nn_conv.c — 3x3 convolution, padding 1, any stride, on NHWC activations, as
 * im2col + sgemm (see include/byol/nn.h).
 *
 * Dimension legend:
 *   B   samples; H, W, C input height, width, channels
 *   HO, WO, OC  output height, width, channels
 *   R   rows of the im2col matrix = B * HO * WO
 *   K   columns of the im2col matrix = 9 * C, ordered (kh, kw, c) like w
 *
 * Row (b, oh, ow) of cols holds the 3x3xC window centred on input pixel
 * (oh * stride, ow * stride), zeros where it hangs over the border. The three
 * taps of one kernel row are adjacent pixels of one input row, so the window is
 * moved as three runs of up to 3*C contiguous floats.
 */
#include "byol/nn.h"

#include <cblas.h>
#include <string.h>

int nn_conv_out(int n, int stride)
{
	return (n - 1) / stride + 1;
}

/* The taps kw in [*lo, *hi) of a kernel row that land inside [0, n) when the
 * window's left tap is at input column i0. */
static void valid_taps(int i0, int n, int *lo, int *hi)
{
	*lo = i0 < 0 ? -i0 : 0;
	*hi = n - i0 < 3 ? n - i0 : 3;
	if (*hi < *lo)
		*hi = *lo;
}

static void im2col(float *cols, const float *inp, int B, int H, int W, int C, int stride)
{
	// cols (R, K), inp (B, H, W, C)
	const int HO = nn_conv_out(H, stride), WO = nn_conv_out(W, stride);
	const long K = 9L * C;
	float *row = cols;
	for (int b = 0; b < B; b++) {
		const float *img = inp + (long)b * H * W * C;
		for (int oh = 0; oh < HO; oh++) {
			for (int ow = 0; ow < WO; ow++, row += K) {
				const int iw0 = ow * stride - 1;
				int lo, hi;
				valid_taps(iw0, W, &lo, &hi);
				for (int kh = 0; kh < 3; kh++) {
					const int ih = oh * stride - 1 + kh;
					float *dst = row + kh * 3L * C;
					if (ih < 0 || ih >= H || lo == hi) {
						memset(dst, 0, sizeof(float) * 3 * C);
						continue;
					}
					if (lo > 0)
						memset(dst, 0, sizeof(float) * lo * C);
					memcpy(dst + (long)lo * C,
					       img + ((long)ih * W + iw0 + lo) * C,
					       sizeof(float) * (hi - lo) * C);
					if (hi < 3)
						memset(dst + (long)hi * C, 0,
						       sizeof(float) * (3 - hi) * C);
				}
			}
		}
	}
}

/* y += x over n floats; out of line so that restrict lets -O2 vectorise it. */
__attribute__((noinline)) static void k_add(float *restrict y, const float *restrict x,
					    long n)
{
	const long n8 = n & ~7L;
	for (long i = 0; i < n8; i++)
		y[i] += x[i];
	for (long i = n8; i < n; i++)
		y[i] += x[i];
}

/* dinp (B, H, W, C) += the windows of dcols (R, K), in row order. */
static void col2im_acc(float *dinp, const float *dcols, int B, int H, int W, int C,
		       int stride)
{
	const int HO = nn_conv_out(H, stride), WO = nn_conv_out(W, stride);
	const long K = 9L * C;
	const float *row = dcols;
	for (int b = 0; b < B; b++) {
		float *img = dinp + (long)b * H * W * C;
		for (int oh = 0; oh < HO; oh++) {
			for (int ow = 0; ow < WO; ow++, row += K) {
				const int iw0 = ow * stride - 1;
				int lo, hi;
				valid_taps(iw0, W, &lo, &hi);
				for (int kh = 0; kh < 3; kh++) {
					const int ih = oh * stride - 1 + kh;
					if (ih < 0 || ih >= H)
						continue;
					const float *src = row + (kh * 3L + lo) * C;
					float *dst = img + ((long)ih * W + iw0 + lo) * C;
					k_add(dst, src, (long)(hi - lo) * C);
				}
			}
		}
	}
}

void nn_conv3x3_forward(float *out, float *cols, const float *inp, const float *w,
			const float *b, int B, int H, int W, int C, int OC, int stride)
{
	// out (B, HO, WO, OC), cols (R, K), inp (B, H, W, C), w (OC, K), b (OC)
	const int R = B * nn_conv_out(H, stride) * nn_conv_out(W, stride);
	im2col(cols, inp, B, H, W, C, stride);
	nn_linear_forward(out, cols, w, b, R, 9 * C, OC);
}

void nn_conv3x3_backward(float *dinp, float *dw, float *db, float *dcols,
			 const float *dout, const float *cols, const float *w, int B,
			 int H, int W, int C, int OC, int stride)
{
	// dinp (B, H, W, C), dw (OC, K), db (OC), dcols (R, K), dout (R, OC), cols (R, K)
	const int R = B * nn_conv_out(H, stride) * nn_conv_out(W, stride);
	const int K = 9 * C;
	nn_linear_backward(NULL, dw, db, dout, cols, w, R, K, OC);
	if (!dinp)
		return;
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, R, K, OC, 1.0f, dout, OC,
		    w, K, 0.0f, dcols, K);
	col2im_acc(dinp, dcols, B, H, W, C, stride);
}
