#include "byol/error.h"

#include <stdarg.h>
#include <stdio.h>

int byol_err(char *err, int code, const char *fmt, ...)
{
	if (err) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, BYOL_ERR_LEN, fmt, ap);
		va_end(ap);
	}
	return code;
}
