/*
 * test_augment.c — views are reproducible, each augmentation does what it says,
 * and the draws do not shift when a probability changes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "byol/augment.h"
#include "byol/rng.h"

#define MEAN 0.286f
#define STD 0.353f

/* A textured image: a gradient plus hashed noise, different in every channel. */
static uint8_t *make_image(int h, int w, int c, uint32_t salt)
{
	uint8_t *img = malloc((size_t)h * w * c);
	assert_non_null(img);
	for (int y = 0; y < h; y++)
		for (int x = 0; x < w; x++)
			for (int k = 0; k < c; k++) {
				uint32_t v = (uint32_t)(y * 131 + x * 7 + k * 1009) * 2654435761u;
				int ramp = (x * 4 + y * 3 + k * 50) % 128;
				img[(y * w + x) * c + k] = (uint8_t)(ramp + ((v + salt) >> 25));
			}
	return img;
}

static float *alloc_view(int h, int w, int c)
{
	float *v = malloc((size_t)h * w * c * sizeof(float));
	assert_non_null(v);
	return v;
}

static augment_params identity_params(void)
{
	augment_params p = augment_defaults();
	p.crop_min = p.crop_max = 1.0f;
	p.flip = p.jitter = p.blur = p.solarize = 0.0f;
	return p;
}

static void mirror(float *dst, const float *src, int h, int w, int c)
{
	for (int y = 0; y < h; y++)
		for (int x = 0; x < w; x++)
			for (int k = 0; k < c; k++)
				dst[(y * w + x) * c + k] = src[(y * w + (w - 1 - x)) * c + k];
}

static float max_abs_diff(const float *a, const float *b, size_t n)
{
	float m = 0;
	for (size_t i = 0; i < n; i++)
		m = fmaxf(m, fabsf(a[i] - b[i]));
	return m;
}

static void test_defaults(void **state)
{
	augment_params p = augment_defaults();
	assert_true(p.crop_min == 0.3f && p.crop_max == 1.0f);
	assert_true(fabsf(p.ratio_min - 0.75f) < 1e-7f && fabsf(p.ratio_max - 4.0f / 3) < 1e-7f);
	assert_true(p.flip == 0.5f && p.jitter == 0.4f);
	assert_true(p.blur == 0.0f && p.solarize == 0.0f);
}

static void test_plain(void **state)
{
	for (int c = 1; c <= 3; c += 2) {
		uint8_t *img = make_image(5, 7, c, 1);
		float *out = alloc_view(5, 7, c);
		augment_plain(out, img, 5, 7, c, MEAN, STD);
		for (int i = 0; i < 5 * 7 * c; i++)
			assert_true(fabs(out[i] - (img[i] / 255.0 - MEAN) / STD) < 1e-6);
		/* a zero std leaves the scale alone rather than dividing by zero */
		augment_plain(out, img, 5, 7, c, 0.5f, 0.0f);
		for (int i = 0; i < 5 * 7 * c; i++)
			assert_true(fabs(out[i] - (img[i] / 255.0 - 0.5)) < 1e-6);
		free(img);
		free(out);
	}
}

/* Full-area crop, no flip, no jitter: the view is the plain image, bit for bit,
 * whether a crop try succeeds or the centre-crop fallback is taken. */
static void test_identity(void **state)
{
	static const int shapes[][3] = { { 28, 28, 1 }, { 32, 32, 3 }, { 1, 1, 1 } };
	augment_params p = identity_params();
	for (size_t s = 0; s < 3; s++) {
		int h = shapes[s][0], w = shapes[s][1], c = shapes[s][2];
		uint8_t *img = make_image(h, w, c, 2);
		float *plain = alloc_view(h, w, c), *v = alloc_view(h, w, c);
		augment_plain(plain, img, h, w, c, MEAN, STD);
		for (uint32_t i = 0; i < 300; i++) {
			augment_view(v, img, h, w, c, &p, 7, i / 100, i, i & 1, MEAN, STD);
			assert_memory_equal(v, plain, (size_t)h * w * c * sizeof(float));
		}
		free(img);
		free(plain);
		free(v);
	}
}

static void test_flip(void **state)
{
	augment_params p = identity_params();
	p.flip = 1.0f;
	for (int c = 1; c <= 3; c += 2) {
		uint8_t *img = make_image(28, 20, c, 3);
		float *plain = alloc_view(28, 20, c), *m = alloc_view(28, 20, c);
		float *v = alloc_view(28, 20, c);
		/* a full-area crop of a 28x20 image needs the ratio 20/28 exactly */
		p.ratio_min = p.ratio_max = 20.0f / 28.0f;
		augment_plain(plain, img, 28, 20, c, MEAN, STD);
		mirror(m, plain, 28, 20, c);
		for (uint32_t i = 0; i < 50; i++) {
			augment_view(v, img, 28, 20, c, &p, 1, 0, i, 0, MEAN, STD);
			assert_memory_equal(v, m, 28 * 20 * c * sizeof(float));
		}
		free(img);
		free(plain);
		free(m);
		free(v);
	}
}

static void test_solarize(void **state)
{
	const uint8_t img[8] = { 0, 1, 100, 127, 128, 200, 254, 255 };
	augment_params p = identity_params();
	p.solarize = 1.0f;
	p.ratio_min = p.ratio_max = 2.0f;      /* the full 2x4 image */
	float v[8];
	augment_view(v, img, 2, 4, 1, &p, 1, 2, 3, 1, MEAN, STD);
	for (int i = 0; i < 8; i++) {
		double x = img[i] / 255.0;
		double want = ((img[i] >= 128 ? 1 - x : x) - MEAN) / STD;
		assert_true(fabs(v[i] - want) < 1e-5);
	}
	/* on a 3-channel image too, per value */
	const uint8_t rgb[12] = { 0, 128, 255, 127, 64, 192, 10, 20, 250, 129, 130, 126 };
	float vr[12];
	p.ratio_min = p.ratio_max = 1.0f;
	augment_view(vr, rgb, 2, 2, 3, &p, 1, 2, 3, 1, MEAN, STD);
	for (int i = 0; i < 12; i++) {
		double x = rgb[i] / 255.0;
		double want = ((rgb[i] >= 128 ? 1 - x : x) - MEAN) / STD;
		assert_true(fabs(vr[i] - want) < 1e-5);
	}
}

static void test_determinism(void **state)
{
	augment_params p = augment_defaults();
	p.blur = 0.5f;
	p.solarize = 0.3f;
	for (int c = 1; c <= 3; c += 2) {
		size_t n = 28 * 28 * (size_t)c;
		uint8_t *img = make_image(28, 28, c, 4);
		float *a = alloc_view(28, 28, c), *b = alloc_view(28, 28, c);
		for (uint32_t i = 0; i < 20; i++) {
			augment_view(a, img, 28, 28, c, &p, 99, 3, i, 0, MEAN, STD);
			augment_view(b, img, 28, 28, c, &p, 99, 3, i, 0, MEAN, STD);
			assert_memory_equal(a, b, n * sizeof(float));
			augment_view(b, img, 28, 28, c, &p, 99, 3, i, 1, MEAN, STD);
			assert_memory_not_equal(a, b, n * sizeof(float));
			augment_view(b, img, 28, 28, c, &p, 99, 4, i, 0, MEAN, STD);
			assert_memory_not_equal(a, b, n * sizeof(float));
			augment_view(b, img, 28, 28, c, &p, 99, 3, i + 1, 0, MEAN, STD);
			assert_memory_not_equal(a, b, n * sizeof(float));
			augment_view(b, img, 28, 28, c, &p, 98, 3, i, 0, MEAN, STD);
			assert_memory_not_equal(a, b, n * sizeof(float));
		}
		free(img);
		free(a);
		free(b);
	}
}

/* Every value finite and within the normalised image of [0, 1]. */
static void test_range(void **state)
{
	augment_params p = augment_defaults();
	p.jitter = 0.8f;
	p.blur = 0.5f;
	p.solarize = 0.5f;
	const float lo = (0 - MEAN) / STD - 1e-5f, hi = (1 - MEAN) / STD + 1e-5f;
	static const int shapes[][3] = { { 28, 28, 1 }, { 32, 32, 3 }, { 17, 40, 1 }, { 3, 2, 3 } };
	for (size_t s = 0; s < 4; s++) {
		int h = shapes[s][0], w = shapes[s][1], c = shapes[s][2];
		size_t n = (size_t)h * w * c;
		uint8_t *img = make_image(h, w, c, 5);
		float *v = alloc_view(h, w, c), *plain = alloc_view(h, w, c);
		augment_plain(plain, img, h, w, c, MEAN, STD);
		int changed = 0;
		for (uint32_t i = 0; i < 200; i++) {
			augment_view(v, img, h, w, c, &p, 5, 0, i, 0, MEAN, STD);
			for (size_t j = 0; j < n; j++)
				assert_true(isfinite(v[j]) && v[j] >= lo && v[j] <= hi);
			changed += memcmp(v, plain, n * sizeof(float)) != 0;
		}
		assert_true(changed > 190);
		free(img);
		free(v);
		free(plain);
	}
}

/* Crops, flips, blur and contrast keep a constant image constant. */
static void test_constant(void **state)
{
	augment_params p = augment_defaults();
	p.blur = 1.0f;
	p.jitter = 0.0f;
	for (int c = 1; c <= 3; c += 2) {
		size_t n = 28 * 28 * (size_t)c;
		uint8_t *img = malloc(n);
		float *v = alloc_view(28, 28, c);
		memset(img, 100, n);
		const float want = (100 / 255.0f - MEAN) / STD;
		for (uint32_t i = 0; i < 50; i++) {
			augment_view(v, img, 28, 28, c, &p, 8, 0, i, 0, MEAN, STD);
			for (size_t j = 0; j < n; j++)
				assert_true(fabsf(v[j] - want) < 1e-5f);
		}
		/* with jitter the level may move, but uniformly */
		p.jitter = 0.4f;
		for (uint32_t i = 0; i < 50; i++) {
			augment_view(v, img, 28, 28, c, &p, 8, 0, i, 0, MEAN, STD);
			for (size_t j = 0; j < n; j++)
				assert_true(fabsf(v[j] - v[0]) < 1e-5f);
		}
		p.jitter = 0.0f;
		free(img);
		free(v);
	}
}

/* Changing a probability changes only what it governs: the same crop (and
 * jitter and blur) with flip 0 or 1 gives mirrored views, and with solarize 0
 * or 1 gives views related by x -> 1 - x. */
static void test_draws_fixed(void **state)
{
	augment_params p = augment_defaults();
	p.blur = 0.5f;
	p.flip = 0.0f;
	const int h = 28, w = 28;
	for (int c = 1; c <= 3; c += 2) {
		size_t n = (size_t)h * w * c;
		uint8_t *img = make_image(h, w, c, 6);
		float *a = alloc_view(h, w, c), *b = alloc_view(h, w, c), *m = alloc_view(h, w, c);
		for (uint32_t i = 0; i < 50; i++) {
			p.flip = 0.0f;
			augment_view(a, img, h, w, c, &p, 11, 1, i, 1, MEAN, STD);
			p.flip = 1.0f;
			augment_view(b, img, h, w, c, &p, 11, 1, i, 1, MEAN, STD);
			mirror(m, a, h, w, c);
			assert_true(max_abs_diff(b, m, n) < 1e-5f);

			p.flip = 0.0f;
			p.solarize = 1.0f;
			augment_view(b, img, h, w, c, &p, 11, 1, i, 1, MEAN, STD);
			p.solarize = 0.0f;
			for (size_t j = 0; j < n; j++) {
				float x = a[j] * STD + MEAN;
				if (fabsf(x - 0.5f) < 1e-4f)
					continue;
				float want = ((x >= 0.5f ? 1 - x : x) - MEAN) / STD;
				assert_true(fabsf(b[j] - want) < 1e-4f);
			}
		}
		free(img);
		free(a);
		free(b);
		free(m);
	}
}

/* The flip, jitter and blur probabilities are honoured (3 sd bounds). */
static void test_rates(void **state)
{
	const int h = 28, w = 28, N = 2000;
	uint8_t *img = make_image(h, w, 1, 7);
	float *plain = alloc_view(h, w, 1), *m = alloc_view(h, w, 1), *v = alloc_view(h, w, 1);
	augment_plain(plain, img, h, w, 1, MEAN, STD);
	mirror(m, plain, h, w, 1);
	const size_t bytes = (size_t)h * w * sizeof(float);

	augment_params p = identity_params();
	p.flip = 0.5f;
	int flipped = 0;
	for (int i = 0; i < N; i++) {
		augment_view(v, img, h, w, 1, &p, 3, 0, (uint32_t)i, 0, MEAN, STD);
		int f = memcmp(v, m, bytes) == 0, s = memcmp(v, plain, bytes) == 0;
		assert_true(f != s);
		flipped += f;
	}
	assert_true(abs(flipped - N / 2) < 3 * 23);

	p = identity_params();
	p.jitter = 0.4f;
	int jittered = 0;
	for (int i = 0; i < N; i++) {
		augment_view(v, img, h, w, 1, &p, 3, 0, (uint32_t)i, 0, MEAN, STD);
		jittered += memcmp(v, plain, bytes) != 0;
	}
	assert_true(abs(jittered - N * 8 / 10) < 3 * 18);

	p = identity_params();
	p.blur = 0.3f;
	int blurred = 0;
	for (int i = 0; i < N; i++) {
		augment_view(v, img, h, w, 1, &p, 3, 0, (uint32_t)i, 0, MEAN, STD);
		blurred += memcmp(v, plain, bytes) != 0;
	}
	/* 0.3 less the ~5% of draws whose sigma is too small to change a pixel */
	assert_true(abs(blurred - N * 285 / 1000) < 3 * 21);
	free(img);
	free(plain);
	free(m);
	free(v);
}

/* Reads the crop box back from a view of a coordinate image (channel 0 = 8 x,
 * channel 1 = 8 y): sampling at pixel centres within the crop, clamped to it, maps
 * output column 0 to the crop's first column and column W-1 to its last. */
static void test_crop_geometry(void **state)
{
	const int h = 28, w = 28, c = 3;
	uint8_t img[28 * 28 * 3];
	for (int y = 0; y < h; y++)
		for (int x = 0; x < w; x++) {
			img[(y * w + x) * c + 0] = (uint8_t)(8 * x);
			img[(y * w + x) * c + 1] = (uint8_t)(8 * y);
			img[(y * w + x) * c + 2] = 0;
		}
	float v[28 * 28 * 3];
	augment_params p = augment_defaults();
	p.flip = 0.0f;
	p.jitter = 0.0f;
	float amin = 2, amax = 0;
	for (uint32_t i = 0; i < 500; i++) {
		augment_view(v, img, h, w, c, &p, 12, 0, i, 0, 0.0f, 1.0f);
		/* back to source coordinates: value * 255 / 8 */
		double xa = v[0] * 255.0 / 8, xb = v[(w - 1) * c] * 255.0 / 8;
		double ya = v[1] * 255.0 / 8, yb = v[(h - 1) * w * c + 1] * 255.0 / 8;
		double cw = xb - xa + 1, ch = yb - ya + 1, x0 = xa, y0 = ya;
		/* whole pixels, inside the image */
		assert_true(fabs(cw - round(cw)) < 1e-3 && fabs(ch - round(ch)) < 1e-3);
		assert_true(fabs(x0 - round(x0)) < 1e-3 && fabs(y0 - round(y0)) < 1e-3);
		assert_true(x0 > -1e-3 && x0 + cw < w + 1e-3);
		assert_true(y0 > -1e-3 && y0 + ch < h + 1e-3);
		/* area and ratio within the ranges, up to rounding to whole pixels */
		double area = cw * ch / (h * w), ratio = cw / ch;
		assert_true(area > 0.3 * (1 - 0.08) && area < 1 + 1e-6);
		assert_true(ratio > 0.75 * (1 - 0.08) && ratio < 4.0 / 3 * (1 + 0.08));
		amin = fminf(amin, (float)area);
		amax = fmaxf(amax, (float)area);
	}
	/* the whole range is used */
	assert_true(amin < 0.35f && amax > 0.9f);

	/* a fixed area fraction */
	p.crop_min = p.crop_max = 0.5f;
	for (uint32_t i = 0; i < 100; i++) {
		augment_view(v, img, h, w, c, &p, 12, 0, i, 0, 0.0f, 1.0f);
		double cw = (v[(w - 1) * c] - v[0]) * 255.0 / 8 + 1;
		double ch = (v[(h - 1) * w * c + 1] - v[1]) * 255.0 / 8 + 1;
		assert_true(fabs(cw * ch / (h * w) - 0.5) < 0.05);
	}
}

/* Brightness and contrast are one monotone map for every pixel of a grey image:
 * they never reorder pixel values, and the view is not the plain image. */
static void test_jitter_monotone(void **state)
{
	const int h = 16, w = 16;
	uint8_t *img = make_image(h, w, 1, 8);
	float v[16 * 16], plain[16 * 16];
	augment_plain(plain, img, h, w, 1, MEAN, STD);
	augment_params p = identity_params();
	p.jitter = 0.6f;
	int changed = 0;
	for (uint32_t i = 0; i < 40; i++) {
		augment_view(v, img, h, w, 1, &p, 13, 0, i, 0, MEAN, STD);
		changed += memcmp(v, plain, sizeof(v)) != 0;
		for (int a = 0; a < h * w; a++)
			for (int b = 0; b < h * w; b++)
				if (img[a] < img[b])
					assert_true(v[a] <= v[b]);
	}
	assert_true(changed > 25);
	free(img);
}

static double total_variation(const float *x, int h, int w)
{
	double tv = 0;
	for (int y = 0; y < h; y++)
		for (int i = 0; i + 1 < w; i++)
			tv += fabs(x[y * w + i + 1] - x[y * w + i]);
	for (int y = 0; y + 1 < h; y++)
		for (int i = 0; i < w; i++)
			tv += fabs(x[(y + 1) * w + i] - x[y * w + i]);
	return tv;
}

/* Blur lowers the total variation of a checkerboard and keeps its mean. The
 * smallest sigmas (under about 0.17 pixel here, some 5% of draws) leave a 3-tap
 * kernel at 1 in the centre to float precision: such a blur barely changes a
 * pixel, so most views, not all, must be smoother. */
static void test_blur_smooths(void **state)
{
	const int h = 28, w = 28, N = 200;
	uint8_t img[28 * 28];
	for (int i = 0; i < h * w; i++)
		img[i] = ((i / w + i % w) & 1) ? 255 : 0;
	float v[28 * 28], plain[28 * 28];
	augment_plain(plain, img, h, w, 1, 0.0f, 1.0f);
	augment_params p = identity_params();
	p.blur = 1.0f;
	double tv0 = total_variation(plain, h, w);
	int smoothed = 0;
	for (uint32_t i = 0; i < N; i++) {
		augment_view(v, img, h, w, 1, &p, 14, 0, i, 0, 0.0f, 1.0f);
		double tv = total_variation(v, h, w);
		assert_true(tv <= tv0 * (1 + 1e-6));
		smoothed += tv < 0.9 * tv0;
		double mean = 0;
		for (int j = 0; j < h * w; j++)
			mean += v[j];
		assert_true(fabs(mean / (h * w) - 0.5) < 0.02);
	}
	assert_true(smoothed > N * 85 / 100);
}

static int ref_reflect(int i, int n)
{
	if (n == 1)
		return 0;
	while (i < 0 || i >= n)
		i = i < 0 ? -i : 2 * (n - 1) - i;
	return i;
}

/* The blur as augment.h documents it, in double, straight from the definition:
 * sigma is draw 27 of the view's stream (uniform in [0.1, 2.0)) times
 * min(1, side / 32), the kernel odd, a tenth of the shorter side, 3 at least,
 * reflect padding. Compared on full-area crops of 1- and 3-channel images. */
static void test_blur_reference(void **state)
{
	static const int shapes[][3] = { { 28, 28, 1 }, { 50, 64, 3 }, { 20, 12, 3 }, { 2, 3, 1 } };
	for (size_t t = 0; t < 4; t++) {
		const int h = shapes[t][0], w = shapes[t][1], c = shapes[t][2];
		const size_t n = (size_t)h * w * c;
		uint8_t *img = make_image(h, w, c, 10);
		float *v = alloc_view(h, w, c);
		double *tmp = malloc(n * sizeof(double)), *ref = malloc(n * sizeof(double));
		assert_non_null(tmp);
		assert_non_null(ref);
		augment_params p = identity_params();
		p.blur = 1.0f;
		p.ratio_min = p.ratio_max = (float)w / (float)h;
		int side = h < w ? h : w, k = (int)(0.1 * side) | 1;
		int r = (k < 3 ? 3 : k) / 2;
		for (uint32_t i = 0; i < 10; i++) {
			augment_view(v, img, h, w, c, &p, 21, 2, i, 1, 0.0f, 1.0f);
			rng_stream s;
			rng_stream_init(&s, 21, 2, i, RNG_VIEW0 + 1);
			for (int j = 0; j < 27; j++)
				rng_u32(&s);
			float scale = side / 32.0f;
			float sigma = rng_range(&s, 0.1f, 2.0f) * (scale < 1 ? scale : 1);
			double kern[64], sum = 0;
			assert_true(2 * r + 1 <= 64);
			for (int j = -r; j <= r; j++)
				sum += kern[j + r] = exp(-(double)j * j / (2.0 * sigma * sigma));
			for (int j = 0; j <= 2 * r; j++)
				kern[j] /= sum;
			for (int y = 0; y < h; y++)
				for (int x = 0; x < w; x++)
					for (int ch = 0; ch < c; ch++) {
						double a = 0;
						for (int j = -r; j <= r; j++) {
							int xs = ref_reflect(x + j, w);
							a += kern[j + r] * img[(y * w + xs) * c + ch] / 255.0;
						}
						tmp[(y * w + x) * c + ch] = a;
					}
			for (int y = 0; y < h; y++)
				for (int x = 0; x < w; x++)
					for (int ch = 0; ch < c; ch++) {
						double a = 0;
						for (int j = -r; j <= r; j++) {
							int ys = ref_reflect(y + j, h);
							a += kern[j + r] * tmp[(ys * w + x) * c + ch];
						}
						ref[(y * w + x) * c + ch] = a;
					}
			for (size_t j = 0; j < n; j++)
				if (fabs(v[j] - ref[j]) > 2e-6)
					fail_msg("%dx%dx%d view %u value %zu: %.7f, "
						 "reference %.7f (sigma %g, r %d)",
						 h, w, c, i, j, v[j], ref[j], sigma, r);
		}
		free(img);
		free(v);
		free(tmp);
		free(ref);
	}
}

/* An image wider than the stack scratch takes the heap path, same results. */
static void test_large_image(void **state)
{
	const int h = 8, w = 700;
	uint8_t *img = make_image(h, w, 1, 9);
	float *v = alloc_view(h, w, 1), *plain = alloc_view(h, w, 1), *m = alloc_view(h, w, 1);
	augment_plain(plain, img, h, w, 1, MEAN, STD);
	mirror(m, plain, h, w, 1);
	augment_params p = identity_params();
	p.ratio_min = p.ratio_max = 700.0f / 8.0f;
	p.flip = 1.0f;
	augment_view(v, img, h, w, 1, &p, 15, 0, 0, 0, MEAN, STD);
	assert_memory_equal(v, m, (size_t)h * w * sizeof(float));
	free(img);
	free(v);
	free(plain);
	free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_plain),
		cmocka_unit_test(test_identity),
		cmocka_unit_test(test_flip),
		cmocka_unit_test(test_solarize),
		cmocka_unit_test(test_determinism),
		cmocka_unit_test(test_range),
		cmocka_unit_test(test_constant),
		cmocka_unit_test(test_draws_fixed),
		cmocka_unit_test(test_rates),
		cmocka_unit_test(test_crop_geometry),
		cmocka_unit_test(test_jitter_monotone),
		cmocka_unit_test(test_blur_smooths),
		cmocka_unit_test(test_blur_reference),
		cmocka_unit_test(test_large_image),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
