/*
 * augment.c — random views: resized crop, flip, brightness/contrast, blur,
 * solarize, normalisation.
 *
 * Dimension letters: H, W = image height and width (the output has the same
 * size), C = channels; images and views are HWC, N = H * W * C values.
 *
 * A view works in place in `out`, values in [0, 1] until the final normalisation:
 * resample the crop (bilinear, flip folded into the column table), jitter, blur,
 * then solarize and normalise in one pass. Scratch lives on the stack for small
 * images (the column taps and one row up to STACK_SIDE, the blur's ring of rows
 * up to STACK_BLUR values) and on the heap beyond.
 *
 * Hot loops run in blocks of VB with a constant inner count over restrict
 * pointers: that is the shape -O2's cheap vectoriser takes. Every loop's order
 * of operations is fixed, so a view is the same bytes on every machine.
 */
#include "byol/augment.h"
#include "byol/rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CROP_TRIES 10
#define STACK_SIDE 512           /* widest image whose taps and row fit the stack */
#define STACK_BLUR 4096          /* floats of blur scratch that the stack holds */
#define VB 8

/* The draws of one view, in stream order; always all of them (29 words). */
typedef struct {
	float area[CROP_TRIES], log_ratio[CROP_TRIES];  /* crop tries */
	float top, left;                                /* crop position */
	float flip;
	float jitter, brightness, contrast;
	float blur, sigma;
	float solarize;
} view_draws;

augment_params augment_defaults(void)
{
	augment_params p = {
		.crop_min = 0.3f, .crop_max = 1.0f,
		.ratio_min = 3.0f / 4.0f, .ratio_max = 4.0f / 3.0f,
		.flip = 0.5f, .jitter = 0.4f, .blur = 0.0f, .solarize = 0.0f,
	};
	return p;
}

static void draw_all(view_draws *d, const augment_params *p, rng_stream *s)
{
	for (int t = 0; t < CROP_TRIES; t++) {
		d->area[t] = rng_uniform(s);
		d->log_ratio[t] = rng_uniform(s);
	}
	d->top = rng_uniform(s);
	d->left = rng_uniform(s);
	d->flip = rng_uniform(s);
	d->jitter = rng_uniform(s);
	float lo = 1.0f - p->jitter > 0.0f ? 1.0f - p->jitter : 0.0f;
	d->brightness = rng_range(s, lo, 1.0f + p->jitter);
	d->contrast = rng_range(s, lo, 1.0f + p->jitter);
	d->blur = rng_uniform(s);
	d->sigma = rng_range(s, 0.1f, 2.0f);
	d->solarize = rng_uniform(s);
}

/* torchvision's RandomResizedCrop.get_params, with the position drawn as a
 * fraction: the crop box (y, x, ch, cw) in whole pixels. */
static void crop_box(const view_draws *d, const augment_params *p, int H, int W, int *y,
		     int *x, int *ch, int *cw)
{
	double area = (double)H * W;
	double rmin = p->ratio_min, rmax = p->ratio_max;
	if (!(rmin > 0 && rmax >= rmin))
		rmin = rmax = 1;
	double lr0 = log(rmin), lr1 = log(rmax);
	for (int t = 0; t < CROP_TRIES; t++) {
		double frac = p->crop_min + (double)(p->crop_max - p->crop_min) * d->area[t];
		double target = area * frac;
		double ratio = exp(lr0 + (lr1 - lr0) * d->log_ratio[t]);
		double fw = round(sqrt(target * ratio)), fh = round(sqrt(target / ratio));
		if (fw > 0 && fw <= W && fh > 0 && fh <= H) {
			*cw = (int)fw;
			*ch = (int)fh;
			*y = (int)(d->top * (float)(H - *ch + 1));
			*x = (int)(d->left * (float)(W - *cw + 1));
			*y = *y > H - *ch ? H - *ch : *y;
			*x = *x > W - *cw ? W - *cw : *x;
			return;
		}
	}
	/* the centre crop of the largest box with a ratio in range */
	double in_ratio = (double)W / H;
	*cw = W;
	*ch = H;
	if (in_ratio < rmin)
		*ch = (int)round(W / rmin);
	else if (in_ratio > rmax)
		*cw = (int)round(H * rmax);
	*ch = *ch < 1 ? 1 : *ch > H ? H : *ch;
	*cw = *cw < 1 ? 1 : *cw > W ? W : *cw;
	*y = (H - *ch) / 2;
	*x = (W - *cw) / 2;
}

/* Bilinear taps for n outputs sampled at pixel centres over [lo, lo + len). */
static inline void tap(int o, int n, int lo, int len, int *i0, int *i1, float *f)
{
	float s = (float)lo + ((float)o + 0.5f) * ((float)len / (float)n) - 0.5f;
	float hi = (float)(lo + len - 1);
	s = s < (float)lo ? (float)lo : s > hi ? hi : s;
	int i = (int)s;         /* s >= 0: truncation is floor */
	*i0 = i;
	*i1 = i + 1 < lo + len ? i + 1 : i;
	*f = s - (float)i;
}

/* out (H, W, C) in [0, 1] = the crop (y, x, ch, cw) of img resized to H x W,
 * mirrored when flip: per output row a vertical lerp of the crop's columns into
 * row (scaled to [0, 1]), then a horizontal lerp gathered through the column
 * taps. row has one extra pixel, a copy of the last, so that the right tap is
 * always left + C (where the sample is clamped to the last column its weight
 * is 0). x0: (W) int scratch; fx: (W), row: ((cw + 1) * C) float scratch. */
static void resample(float *restrict out, const uint8_t *restrict img, int H, int W, int C,
		     int y, int x, int ch, int cw, int flip, int *restrict x0,
		     float *restrict fx, float *restrict row)
{
	for (int o = 0; o < W; o++) {
		int k = flip ? W - 1 - o : o, i1;
		tap(o, W, x, cw, &x0[k], &i1, &fx[k]);
		x0[k] = (x0[k] - x) * C;        /* offset into row */
	}
	const int rn = cw * C;
	const float s = 1.0f / 255.0f;
	for (int oy = 0; oy < H; oy++) {
		int y0, y1;
		float fy;
		tap(oy, H, y, ch, &y0, &y1, &fy);
		const uint8_t *restrict r0 = img + ((size_t)y0 * W + x) * C;
		const uint8_t *restrict r1 = img + ((size_t)y1 * W + x) * C;
		int i = 0;
		for (; i + VB <= rn; i += VB)
			for (int k = 0; k < VB; k++) {
				float a = r0[i + k], b = r1[i + k];
				row[i + k] = (a + (b - a) * fy) * s;
			}
		for (; i < rn; i++) {
			float a = r0[i], b = r1[i];
			row[i] = (a + (b - a) * fy) * s;
		}
		for (int k = 0; k < C; k++)
			row[rn + k] = row[rn - C + k];
		float *restrict o = out + (size_t)oy * W * C;
		if (C == 1) {
			for (int ox = 0; ox < W; ox++) {
				float a = row[x0[ox]], b = row[x0[ox] + 1];
				o[ox] = a + (b - a) * fx[ox];
			}
			continue;
		}
		for (int ox = 0; ox < W; ox++)
			for (int k = 0; k < C; k++) {
				float a = row[x0[ox] + k], b = row[x0[ox] + C + k];
				o[ox * C + k] = a + (b - a) * fx[ox];
			}
	}
}

/* x (n) = clamp(x * f + t, 0, 1). */
static void affine_clamp(float *restrict x, size_t n, float f, float t)
{
	size_t i = 0;
	for (; i + VB <= n; i += VB)
		for (int k = 0; k < VB; k++) {
			float v = x[i + k] * f + t;
			v = v < 1.0f ? v : 1.0f;        /* the shape of minps and maxps */
			x[i + k] = v > 0.0f ? v : 0.0f;
		}
	for (; i < n; i++) {
		float v = x[i] * f + t;
		v = v < 1.0f ? v : 1.0f;
		x[i] = v > 0.0f ? v : 0.0f;
	}
}

/* The mean grey level of x (npix, C): ITU-R 601 luma for 3 channels, the plain
 * mean otherwise. Partial sums in VB float lanes, combined in double. */
static float grey_mean(const float *restrict x, size_t npix, int C)
{
	float lane[VB] = { 0 };
	size_t i = 0, n = C == 3 ? npix : npix * C;
	if (C == 3) {
		for (; i + VB <= n; i += VB)
			for (int k = 0; k < VB; k++) {
				const float *p = x + 3 * (i + k);
				lane[k] += 0.299f * p[0] + 0.587f * p[1] + 0.114f * p[2];
			}
		for (; i < n; i++)
			lane[0] += 0.299f * x[3 * i] + 0.587f * x[3 * i + 1] +
				   0.114f * x[3 * i + 2];
	} else {
		for (; i + VB <= n; i += VB)
			for (int k = 0; k < VB; k++)
				lane[k] += x[i + k];
		for (; i < n; i++)
			lane[0] += x[i];
	}
	double sum = 0;
	for (int k = 0; k < VB; k++)
		sum += lane[k];
	return (float)(sum / (double)n);
}

/* Brightness x * b, then contrast (x - m) * c + m with m the mean grey level of
 * the brightened image; clamped to [0, 1] after each. */
static void jitter(float *x, size_t npix, int C, float b, float c)
{
	affine_clamp(x, npix * C, b, 0.0f);
	float m = grey_mean(x, npix, C);
	affine_clamp(x, npix * C, c, m - m * c);
}

/* Mirror index for "reflect" padding (-1 -> 1, n -> n - 2). */
static int reflect(int i, int n)
{
	if (n == 1)
		return 0;
	while (i < 0 || i >= n)
		i = i < 0 ? -i : 2 * (n - 1) - i;
	return i;
}

/* dst[i] = sum over j of kern[j] * rows[j][i], j ascending, for i in [0, n).
 * Blocks of 32 then VB keep enough independent sums in flight; every path does
 * the same arithmetic per value, so the split does not change the result. */
static void conv_rows(float *restrict dst, const float *const *rows, const float *restrict kern,
		      int K, size_t n)
{
	size_t i = 0;
	for (; i + 32 <= n; i += 32) {
		float acc[32] = { 0 };
		for (int j = 0; j < K; j++) {
			const float *restrict q = rows[j] + i;
			const float kj = kern[j];
			for (int k = 0; k < 32; k++)
				acc[k] += kj * q[k];
		}
		for (int k = 0; k < 32; k++)
			dst[i + k] = acc[k];
	}
	for (; i + VB <= n; i += VB) {
		float acc[VB] = { 0 };
		for (int j = 0; j < K; j++) {
			const float *restrict q = rows[j] + i;
			const float kj = kern[j];
			for (int k = 0; k < VB; k++)
				acc[k] += kj * q[k];
		}
		for (int k = 0; k < VB; k++)
			dst[i + k] = acc[k];
	}
	for (; i < n; i++) {
		float acc = 0;
		for (int j = 0; j < K; j++)
			acc += kern[j] * rows[j][i];
		dst[i] = acc;
	}
}

/* dst (W, C) = src (W, C) convolved along W with kern (2r+1), reflect padding,
 * through pad ((W + 2r), C): the row with r reflected pixels either side. */
static void blur_row(float *restrict dst, const float *restrict src, float *restrict pad,
		     int W, int C, const float *restrict kern, int r)
{
	const int rc = r * C;
	memcpy(pad + rc, src, (size_t)W * C * sizeof(float));
	for (int t = 0; t < rc; t++) {  /* flat, so that it is not a memcpy per pixel */
		pad[t] = src[reflect(t / C - r, W) * C + t % C];
		pad[rc + W * C + t] = src[reflect(W + t / C, W) * C + t % C];
	}
	const float *rows[2 * r + 1];
	for (int j = 0; j <= 2 * r; j++)
		rows[j] = pad + (size_t)j * C;
	conv_rows(dst, rows, kern, 2 * r + 1, (size_t)W * C);
}

/* Separable gaussian blur of x (H, W, C) in place. Rows are blurred into ring,
 * ((2r+1), W, C), source row q in slot q % (2r+1), each just before the first
 * output row that needs it and while x still holds it; output row y then sums
 * the slots of rows y - r .. y + r (reflected), a whole row at a time.
 * pad: ((W + 2r), C) scratch; kern: (2r+1) scratch. */
static void blur(float *restrict x, float *restrict ring, float *restrict pad, int H, int W,
		 int C, float sigma, int r, float *restrict kern)
{
	double sum = 0, s2 = 2.0 * (double)sigma * sigma;
	for (int k = -r; k <= r; k++)
		sum += exp(-(double)k * k / s2);
	for (int k = -r; k <= r; k++)
		kern[k + r] = (float)(exp(-(double)k * k / s2) / sum);

	const int K = 2 * r + 1;
	const size_t rn = (size_t)W * C;
	int next = 0;           /* the next source row to blur into the ring */
	for (int y = 0; y < H; y++) {
		for (; next < H && next <= y + r; next++)
			blur_row(ring + (size_t)(next % K) * rn, x + (size_t)next * rn, pad, W, C,
				 kern, r);
		const float *rows[K];
		for (int j = 0; j < K; j++)
			rows[j] = ring + (size_t)(reflect(y + j - r, H) % K) * rn;
		conv_rows(x + (size_t)y * rn, rows, kern, K, rn);
	}
}

/* Kernel radius: the kernel is odd, about a tenth of the shorter side, 3 at least. */
static int blur_radius(int H, int W)
{
	int side = H < W ? H : W;
	int k = (int)(0.1 * side) | 1;
	return (k < 3 ? 3 : k) / 2;
}

/* x (n) = (solarized x - mean) * inv. On [0, 1], solarizing at 0.5 is
 * min(x, 1 - x); a = 1 solarizes, a = +inf leaves x as it is (min(x, inf)), so
 * the loop has no branch. */
static void finish(float *restrict x, size_t n, float a, float mean, float inv)
{
	size_t i = 0;
	for (; i + VB <= n; i += VB)
		for (int k = 0; k < VB; k++) {
			float v = x[i + k], u = a - v;
			v = v < u ? v : u;
			x[i + k] = (v - mean) * inv;
		}
	for (; i < n; i++) {
		float v = x[i], u = a - v;
		v = v < u ? v : u;
		x[i] = (v - mean) * inv;
	}
}

/* out (n) = (img / 255 - mean) * inv. */
static void normalise_bytes(float *restrict out, const uint8_t *restrict img, size_t n,
			    float mean, float inv)
{
	const float s = 1.0f / 255.0f;
	size_t i = 0;
	for (; i + VB <= n; i += VB)
		for (int k = 0; k < VB; k++)
			out[i + k] = ((float)img[i + k] * s - mean) * inv;
	for (; i < n; i++)
		out[i] = ((float)img[i] * s - mean) * inv;
}

static void fill_nan(float *x, size_t n)
{
	for (size_t i = 0; i < n; i++)
		x[i] = NAN;
}

void augment_view(float *out, const uint8_t *img, int h, int w, int c,
		  const augment_params *p, uint64_t seed, uint32_t epoch, uint32_t index,
		  uint32_t view, float mean, float std)
{
	rng_stream s;
	view_draws d;
	rng_stream_init(&s, seed, epoch, index, RNG_VIEW0 + view);
	draw_all(&d, p, &s);
	const size_t n = (size_t)h * w * c;

	int y, x, ch, cw;
	crop_box(&d, p, h, w, &y, &x, &ch, &cw);
	int istack[STACK_SIDE];
	float fstack[STACK_SIDE + (STACK_SIDE + 1) * 4];
	int *taps = istack;
	float *fbuf = fstack;
	if (w > STACK_SIDE || c > 4) {
		taps = malloc((size_t)w * sizeof(int));
		fbuf = malloc((w + (w + 1) * (size_t)c) * sizeof(float));
		if (!taps || !fbuf) {   /* only for images over STACK_SIDE: fail loudly */
			free(taps);
			free(fbuf);
			fill_nan(out, n);
			return;
		}
	}
	resample(out, img, h, w, c, y, x, ch, cw, d.flip < p->flip, taps, fbuf, fbuf + w);
	if (taps != istack) {
		free(taps);
		free(fbuf);
	}

	if (p->jitter > 0 && d.jitter < 0.8f)
		jitter(out, (size_t)h * w, c, d.brightness, d.contrast);

	if (d.blur < p->blur) {
		int r = blur_radius(h, w);
		float side = (float)(h < w ? h : w) / 32.0f;
		/* the ring ((2r+1), W, C), the padded row ((W + 2r), C), the kernel (2r+1) */
		size_t K = (size_t)(2 * r + 1), rn = (size_t)w * c;
		size_t nb = K * rn + (rn + (K - 1) * c) + K;
		float bstack[STACK_BLUR];
		float *tmp = nb <= STACK_BLUR ? bstack : malloc(nb * sizeof(float));
		if (!tmp) {
			fill_nan(out, n);
			return;
		}
		float *pad = tmp + K * rn, *kern = pad + rn + (K - 1) * c;
		blur(out, tmp, pad, h, w, c, d.sigma * (side < 1 ? side : 1), r, kern);
		if (tmp != bstack)
			free(tmp);
	}

	float a = d.solarize < p->solarize ? 1.0f : INFINITY;
	finish(out, n, a, mean, std > 0 ? 1.0f / std : 1.0f);
}

void augment_plain(float *out, const uint8_t *img, int h, int w, int c, float mean, float std)
{
	normalise_bytes(out, img, (size_t)h * w * c, mean, std > 0 ? 1.0f / std : 1.0f);
}
