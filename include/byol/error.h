/*
 * error.h — how byold reports failure.
 *
 * A function that can fail returns 0 on success or a negative errno-style code
 * (-EINVAL, -EIO, -ENOMEM, ...), and writes one human-readable line into a
 * caller-supplied buffer of BYOL_ERR_LEN bytes saying what was wrong and where
 * ("train-images-idx3-ubyte.gz: bad magic 0x00000803, expected ..."). The buffer
 * may be NULL when the caller does not want the text.
 */
#ifndef BYOL_ERROR_H
#define BYOL_ERROR_H

#include <errno.h>

#define BYOL_ERR_LEN 512

/* Formats into err (when not NULL) and returns code, so that callers can write
 * `return byol_err(err, -EINVAL, "%s:%d: bad value", path, line);`. */
int byol_err(char *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
