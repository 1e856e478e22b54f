/*
 * augment.h — the random views of an image.
 *
 * A view is a pure function of (image, params, seed, epoch, image index, view
 * number): all draws come from the counter-based stream rng (seed, epoch, index,
 * RNG_VIEW0 + view), always in the same order and the same number whatever the
 * probabilities, so a given image's two views are identical in any process.
 * Values are in [0, 1] (pixel / 255) until the last step. In order:
 *
 * 1. Random resized crop, as torchvision's RandomResizedCrop: up to 10 tries of
 *    an area fraction uniform in [crop_min, crop_max] of h * w and an aspect
 *    ratio w/h log-uniform in [ratio_min, ratio_max], sizes rounded to whole
 *    pixels; the first that fits is placed at a uniform whole-pixel position;
 *    if none fits, the centre crop of the largest box with a ratio in range
 *    (the whole image when h/w allows it). The crop is resized back to h x w
 *    bilinearly, sampling at pixel centres (src = (dst + 0.5) * crop / size -
 *    0.5, clamped to the crop). A full-area crop of a square image is therefore
 *    the image itself, bit for bit; of a non-square one only when the ratio
 *    range lets the whole image through.
 * 2. Horizontal flip with probability `flip`.
 * 3. With probability 0.8 when jitter > 0: brightness x * b, clamp to [0, 1],
 *    then contrast (x - m) * k + m (computed as x * k + (m - m * k)), clamp,
 *    where m is the mean grey level of the brightened image (ITU-R 601 luma
 *    0.299 R + 0.587 G + 0.114 B for c = 3, the plain mean otherwise); b and k
 *    uniform in [max(0, 1 - jitter), 1 + jitter].
 * 4. With probability `blur`: separable gaussian blur, reflect padding (-1 -> 1),
 *    kernel size odd, a tenth of the shorter side, 3 at least (3 for 28 and 32
 *    pixels, 23 for 224, as in BYOL), sigma uniform in [0.1, 2.0] times
 *    min(1, shorter side / 32): BYOL's own range for images of 32 pixels and
 *    more, shrunk in proportion below (28 pixels: [0.0875, 1.75]). Sigmas under
 *    about 0.17 leave a 3-tap kernel's outer weights below float precision.
 * 5. With probability `solarize`: x -> 1 - x where x >= 0.5.
 * 6. Normalisation: (x - mean) / std, computed as (x - mean) * (1 / std); a std
 *    that is not > 0 is taken as 1.
 *
 * The stream's words, one each (rng_uniform or rng_range), 29 per view:
 *   0-19 the 10 crop tries (area, log ratio) in pairs; 20, 21 crop top and left;
 *   22 flip; 23 jitter applied, 24 brightness, 25 contrast; 26 blur applied,
 *   27 sigma (rng_range(0.1, 2.0), before the scaling); 28 solarize.
 * An event of probability p happens when its word's uniform is < p.
 *
 * Works for any c >= 1 (tested with 1 and 3). Cost on this machine class, one
 * 28x28x1 view: about 2.5 us with the defaults, 4.5 us with blur; 32x32x3 about
 * 9 us. Scratch lives on the stack for images up to 512 pixels wide and on the
 * heap beyond; if that allocation fails the view is all NaN (loud, not silent).
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

/* The defaults of DESIGN.md: crop 0.3-1.0, ratio 3/4-4/3, flip 0.5, jitter 0.4,
 * blur 0, solarize 0. */
augment_params augment_defaults(void);

/* out (h*w*c floats, HWC) = normalised view `view` (0 or 1) of img (h, w, c bytes).
 * view selects the stream's purpose word RNG_VIEW0 + view, so it must stay below
 * RNG_PERMUTE. out and img must not overlap. Thread-safe; about 28 KB of stack;
 * allocates only for images over 512 pixels wide or, when blurring, over about
 * 100x100x3. */
void augment_view(float *out, const uint8_t *img, int h, int w, int c,
		  const augment_params *p, uint64_t seed, uint32_t epoch, uint32_t index,
		  uint32_t view, float mean, float std);

/* out = the image without augmentation, normalised (for evaluation):
 * (img / 255 - mean) * (1 / std), the same arithmetic as a view's last step, so
 * an identity view equals it bit for bit. */
void augment_plain(float *out, const uint8_t *img, int h, int w, int c, float mean,
		   float std);

#endif
