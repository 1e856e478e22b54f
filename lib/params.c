#include "byol/params.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int param_layout_add(param_layout *L, const char *name, int ndim, const int *shape,
		     int no_decay)
{
	if (strlen(name) >= PARAM_NAME_LEN || ndim < 1 || ndim > PARAM_MAX_DIMS)
		return -EINVAL;
	size_t count = 1;
	for (int i = 0; i < ndim; i++) {
		if (shape[i] <= 0)
			return -EINVAL;
		count *= (size_t)shape[i];
	}
	if (L->n == L->cap) {
		int cap = L->cap ? 2 * L->cap : 16;
		param_tensor *t = realloc(L->t, (size_t)cap * sizeof(*t));
		if (!t)
			return -ENOMEM;
		L->t = t;
		L->cap = cap;
	}
	param_tensor *p = &L->t[L->n];
	memset(p, 0, sizeof(*p));
	strcpy(p->name, name);
	p->offset = L->total;
	p->count = count;
	p->ndim = ndim;
	memcpy(p->shape, shape, (size_t)ndim * sizeof(int));
	p->no_decay = no_decay;
	L->total += count;
	return L->n++;
}

int param_layout_find(const param_layout *L, const char *name)
{
	for (int i = 0; i < L->n; i++)
		if (strcmp(L->t[i].name, name) == 0)
			return i;
	return -1;
}

void param_layout_free(param_layout *L)
{
	free(L->t);
	memset(L, 0, sizeof(*L));
}
