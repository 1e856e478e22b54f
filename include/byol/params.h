/*
 * params.h — one flat float buffer per network, cut into named tensors.
 *
 * A param_layout is a table of {name, offset, count, shape, no_decay}. Parameters,
 * gradients, optimizer moments and the EMA target all share one layout, so a
 * gradient is one contiguous buffer of layout->total floats, the EMA update is one
 * loop, and a checkpoint is this table written out. Tensors are laid out in the
 * order they are added; offsets are in floats. `no_decay` marks biases and
 * normalisation parameters: the optimizer excludes them from weight decay and
 * from LARS trust-ratio adaptation.
 */
#ifndef BYOL_PARAMS_H
#define BYOL_PARAMS_H

#include <stddef.h>

#define PARAM_NAME_LEN 64
#define PARAM_MAX_DIMS 4

typedef struct {
	char name[PARAM_NAME_LEN];
	size_t offset;              /* in floats, from the start of the buffer */
	size_t count;               /* product of shape */
	int ndim;
	int shape[PARAM_MAX_DIMS];
	int no_decay;               /* bias or norm parameter */
} param_tensor;

typedef struct {
	param_tensor *t;
	int n, cap;
	size_t total;               /* floats in the whole buffer */
} param_layout;

/* Appends a tensor; returns its index (>= 0) or -ENOMEM / -EINVAL (name too
 * long, ndim out of range, non-positive dimension). */
int param_layout_add(param_layout *L, const char *name, int ndim, const int *shape,
		     int no_decay);

/* Returns the index of the tensor named `name`, or -1. */
int param_layout_find(const param_layout *L, const char *name);

/* Frees the table (not any buffer laid out by it) and zeroes L. */
void param_layout_free(param_layout *L);

#endif
