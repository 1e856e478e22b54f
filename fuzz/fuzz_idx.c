/*
 * fuzz_idx.c — libFuzzer target for the idx loader: idx_parse (lib/idx.c), the
 * function idx_read runs on every dataset file's bytes, plain or gzip.
 *
 * Besides "no crash, no leak, no undefined behaviour", it checks what the
 * contract promises of a success: 1 to 4 dimensions, each at most INT_MAX, a
 * buffer that holds their product (ASan sees a short one when the bytes are
 * summed), and for a plain file exactly header + data bytes. A failure must
 * return a negative code with a message naming the file.
 */
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "byol/data.h"
#include "byol/error.h"
#include "fuzz.h"

#define NAME "fuzz.idx"

int LLVMFuzzerTestOneInput(const uint8_t *bytes, size_t size)
{
	uint8_t *data = (uint8_t *)&data;      /* must come back NULL on failure */
	int ndim = -1, dims[4] = { -1, -1, -1, -1 };
	char err[BYOL_ERR_LEN] = "";
	int rc = idx_parse(bytes, size, NAME, &data, &ndim, dims, err);
	if (rc != 0) {
		FUZZ_CHECK(rc == -EINVAL || rc == -ENOMEM, "rc %d: %s", rc, err);
		FUZZ_CHECK(data == NULL, "data left set after rc %d", rc);
		FUZZ_CHECK(strncmp(err, NAME ": ", strlen(NAME) + 2) == 0,
			   "message does not name the file: \"%s\"", err);
		return 0;
	}
	FUZZ_CHECK(data != NULL, "success without data");
	FUZZ_CHECK(ndim >= 1 && ndim <= 4, "ndim %d", ndim);
	size_t total = 1;
	for (int i = 0; i < ndim; i++) {
		FUZZ_CHECK(dims[i] >= 0, "dims[%d] = %d", i, dims[i]);
		total *= (size_t)dims[i];
	}
	int gz = size >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b;
	if (!gz) {
		FUZZ_CHECK(size == 4 + 4 * (size_t)ndim + total,
			   "plain file of %zu bytes accepted for %zu data bytes", size, total);
		FUZZ_CHECK(memcmp(data, bytes + 4 + 4 * ndim, total) == 0,
			   "data differs from the file's bytes");
	}
	/* every byte of the promised buffer is readable (ASan checks the reads) */
	unsigned sum = 0;
	for (size_t i = 0; i < total; i++)
		sum += data[i];
	(void)sum;
	free(data);
	return 0;
}
