/*
 * fuzz_safetensors.c — libFuzzer target for the checkpoint reader:
 * safetensors_parse (lib/safetensors.c), which runs the same checks as
 * safetensors_read on a file.
 *
 * On a success it checks what the header contract promises: every tensor has a
 * non-empty unique name, at most ST_MAX_DIMS dimensions whose product is its
 * count, data 4-byte aligned inside one buffer, the tensors' bytes tiling the
 * data exactly (they sum to the data's length) and equal to the input's;
 * safetensors_find and safetensors_meta find every entry. On a failure: a
 * negative code, a message naming the file, nothing left allocated.
 */
#include <errno.h>
#include <string.h>

#include "byol/error.h"
#include "byol/safetensors.h"
#include "fuzz.h"

#define NAME "fuzz.safetensors"

int LLVMFuzzerTestOneInput(const uint8_t *bytes, size_t size)
{
	st_file f;
	char err[BYOL_ERR_LEN] = "";
	int rc = safetensors_parse(&f, bytes, size, NAME, err);
	if (rc != 0) {
		FUZZ_CHECK(rc == -EINVAL || rc == -ENOMEM || rc == -EFBIG, "rc %d: %s", rc, err);
		FUZZ_CHECK(strncmp(err, NAME ": ", strlen(NAME) + 2) == 0,
			   "message does not name the file: \"%s\"", err);
		FUZZ_CHECK(f.t == NULL && f.meta == NULL && f.priv == NULL && f.nt == 0,
			   "failed parse left state behind");
		safetensors_free(&f);
		return 0;
	}
	uint64_t hlen;
	memcpy(&hlen, bytes, 8);
	const uint8_t *data = bytes + 8 + hlen;
	size_t data_len = size - 8 - (size_t)hlen, sum = 0;
	const char *base = f.priv;
	FUZZ_CHECK(f.nt >= 0 && f.nmeta >= 0, "counts %d %d", f.nt, f.nmeta);
	for (int i = 0; i < f.nt; i++) {
		const st_entry *t = &f.t[i];
		FUZZ_CHECK(t->name && t->name[0], "tensor %d without a name", i);
		FUZZ_CHECK(t->ndim >= 0 && t->ndim <= ST_MAX_DIMS, "'%s': ndim %d", t->name, t->ndim);
		size_t count = 1;
		for (int d = 0; d < t->ndim; d++) {
			FUZZ_CHECK(t->shape[d] >= 0, "'%s': shape[%d] %lld", t->name, d,
				   (long long)t->shape[d]);
			count *= (size_t)t->shape[d];
		}
		FUZZ_CHECK(count == t->count, "'%s': count %zu, shape says %zu", t->name,
			   t->count, count);
		FUZZ_CHECK(((uintptr_t)t->data & 3) == 0, "'%s': data not 4-byte aligned",
			   t->name);
		const char *p = (const char *)t->data;
		FUZZ_CHECK(p >= base && (size_t)(p - base) + 4 * count <= data_len,
			   "'%s': data outside the buffer", t->name);
		FUZZ_CHECK(memcmp(p, data + (p - base), 4 * count) == 0,
			   "'%s': data differs from the file's", t->name);
		FUZZ_CHECK(safetensors_find(&f, t->name) == t, "'%s': find gives another entry",
			   t->name);
		sum += 4 * count;
	}
	FUZZ_CHECK(sum == data_len, "tensors hold %zu bytes of %zu", sum, data_len);
	for (int i = 0; i < f.nmeta; i++) {
		const st_meta *m = &f.meta[i];
		FUZZ_CHECK(m->key && m->value, "metadata %d incomplete", i);
		FUZZ_CHECK(safetensors_meta(&f, m->key) == m->value,
			   "metadata '%s': lookup gives another value", m->key);
	}
	FUZZ_CHECK(safetensors_find(&f, "__metadata__") == NULL, "__metadata__ is a tensor");
	safetensors_free(&f);
	FUZZ_CHECK(f.t == NULL && f.priv == NULL, "free left state behind");
	return 0;
}
