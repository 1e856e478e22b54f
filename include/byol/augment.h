/*
 * augment.h — the random views of an image.
 *
 * A view is a pure function of (image, params, seed, epoch, image index, view
 * number): all draws come from the counter-based stream rng (seed, epoch, index,
 * RNG_VIEW0 + view), always in the same order and the same number whatever the
 * probabilities, so a given image's two views are identical in any process.
 * In order: random resized crop (area fraction in [crop_min, crop_max], aspect
 * ratio log-uniform in [ratio_min, ratio_max], 10 tries then a centre crop,
 * bilinear resize back to h x w), horizontal flip with probability `flip`,
 * brightness then contrast jitter (factors uniform in [1 - jitter, 1 + jitter],
 * applied with probability 0.8 when jitter > 0), gaussian blur with probability
 * `blur` (sigma uniform in [0.1, 2.0] scaled by h/224... see augment.c), solarize
 * with probability `solarize` (x -> 1 - x where x >= 0.5). The output is
 * normalised: (x - mean) / std.
 */
#ifndef BYOL_AUGMENT_H
#define BYOL_AUGMENT_H

#include <stdint.h>

typedef struct {
	float crop_min, crop_max;       /* area fraction */
	float ratio_min, ratio_max;     /* aspect ratio w/h */
	float flip;                     /* probability */
	float jitter;                   /* brightness/contrast strength */
	float blur;                     /* probability */
	float solarize;                 /* probability */
} augment_params;

/* The defaults of DESIGN.md: crop 0.3-1.0, ratio 3/4-4/3, flip 0.5, jitter 0.4. */
augment_params augment_defaults(void);

/* out (h*w*c floats, HWC) = normalised view `view` (0 or 1) of img (h, w, c bytes). */
void augment_view(float *out, const uint8_t *img, int h, int w, int c,
		  const augment_params *p, uint64_t seed, uint32_t epoch, uint32_t index,
		  uint32_t view, float mean, float std);

/* out = the image without augmentation, normalised (for evaluation). */
void augment_plain(float *out, const uint8_t *img, int h, int w, int c, float mean,
		   float std);

#endif
