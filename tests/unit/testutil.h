/* Helpers shared by the model-level unit tests: a small synthetic dataset and a
 * small experiment config. Test-only; included by test files, never linked into
 * the library. */
#ifndef BYOL_TESTUTIL_H
#define BYOL_TESTUTIL_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "byol/config.h"
#include "byol/data.h"
#include "byol/error.h"

/* n images of h x w x c with pseudo-random pixels and labels in [0, 4). */
static inline void testutil_dataset(dataset *d, int n, int h, int w, int c, uint32_t seed)
{
	memset(d, 0, sizeof(*d));
	d->n = n;
	d->h = h;
	d->w = w;
	d->c = c;
	size_t px = (size_t)n * h * w * c;
	d->pixels = malloc(px);
	d->labels = malloc((size_t)n);
	uint32_t s = seed * 2654435761u + 1;
	double sum = 0, ss = 0;
	for (size_t i = 0; i < px; i++) {
		s ^= s << 13;
		s ^= s >> 17;
		s ^= s << 5;
		d->pixels[i] = (uint8_t)(s >> 24);
		double v = d->pixels[i] / 255.0;
		sum += v;
		ss += v * v;
	}
	for (int i = 0; i < n; i++)
		d->labels[i] = (uint8_t)(i % 4);
	d->n_classes = 4;
	d->mean = (float)(sum / px);
	d->std = (float)__builtin_sqrt(ss / px - (sum / px) * (sum / px));
}

/* A tiny experiment: MLP 16-16, projector 16 -> 8, predictor 16 -> 8, shards of 8. */
static inline void testutil_config(experiment_config *c)
{
	config_defaults(c);
	c->seed = 7;
	c->batch_size = 16;
	c->shard_size = 8;
	c->n_encoder_widths = 2;
	c->encoder_widths[0] = 16;
	c->encoder_widths[1] = 16;
	c->proj_hidden = 16;
	c->proj_dim = 8;
	c->pred_hidden = 16;
	c->gn_groups = 4;
	c->epochs = 2;
	c->warmup_epochs = 0;
	c->knn_every_epochs = 0;
	c->probe = 0;
}

#endif
