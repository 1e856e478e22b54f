#include "byol/inifile.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "byol/error.h"

#define VALUE_MAX 4096
#define FILE_MAX (1 << 20)

struct inifile {
	const char *name;               /* the file, in messages */
	const char *p, *end;            /* reader cursor */
	int line;                       /* physical line last handed to libinih */
	int err_line, rc;               /* the first failure */
	char *err;
	inifile_section_fn known;
	inifile_value_fn fn;
	void *user;
};

int inifile_line(const inifile *f)
{
	return f->line;
}

int inifile_fail(inifile *f, int rc, const char *fmt, ...)
{
	if (f->err_line)
		return 0;               /* keep the first */
	f->err_line = f->line;
	f->rc = rc;
	if (f->err) {
		int n = snprintf(f->err, BYOL_ERR_LEN, "%s:%d: ", f->name, f->line);
		va_list ap;
		va_start(ap, fmt);
		if (n >= 0 && n < BYOL_ERR_LEN)
			vsnprintf(f->err + n, (size_t)(BYOL_ERR_LEN - n), fmt, ap);
		va_end(ap);
	}
	return 0;
}

/* libinih's reader: one physical line per call, like fgets. */
static char *read_line(char *str, int num, void *stream)
{
	inifile *f = stream;
	if (f->p >= f->end)
		return NULL;
	const char *nl = memchr(f->p, '\n', (size_t)(f->end - f->p));
	const char *eol = nl ? nl : f->end;
	const char *s = f->p;
	f->p = nl ? nl + 1 : f->end;
	f->line++;
	if (f->line == 1 && eol - s >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0)
		s += 3;                 /* a UTF-8 byte order mark */
	while (s < eol && (*s == ' ' || *s == '\t'))
		s++;
	size_t n = (size_t)(eol - s);
	if (n && s[n - 1] == '\r')
		n--;
	if (memchr(s, '\0', n)) {
		inifile_fail(f, -EINVAL, "NUL byte in the line");
		n = 0;
	} else if (n + 2 > (size_t)num) {
		inifile_fail(f, -EINVAL, "line longer than %d characters", num - 2);
		n = 0;
	}
	memcpy(str, s, n);
	str[n] = '\n';
	str[n + 1] = '\0';
	if (n && str[0] == '[') {
		/* libinih takes everything up to the first ']' as the name */
		char *close = memchr(str, ']', n);
		if (close) {
			*close = '\0';
			if (!f->known(f->user, str + 1))
				inifile_fail(f, -EINVAL, "unknown section [%s]", str + 1);
			*close = ']';
		}
	}
	return str;
}

static int on_value(void *user, const char *section, const char *key, const char *value)
{
	inifile *f = user;
	char val[VALUE_MAX];
	if (!*section && !f->known(f->user, ""))
		return inifile_fail(f, -EINVAL, "%s: key outside any [section]", key);
	if (*section && !f->known(f->user, section))
		return inifile_fail(f, -EINVAL, "unknown section [%s]", section);
	if (strlen(value) >= sizeof(val))
		return inifile_fail(f, -EINVAL, "[%s] %s: value too long", section, key);
	strcpy(val, value);
	/* "value   # comment": libinih only knows " ;" comments */
	for (char *h = strchr(val, '#'); h; h = strchr(h + 1, '#'))
		if (h > val && isspace((unsigned char)h[-1])) {
			*h = '\0';
			break;
		}
	for (size_t n = strlen(val); n && isspace((unsigned char)val[n - 1]); n--)
		val[n - 1] = '\0';
	return f->fn(f, f->user, section, key, val);
}

int inifile_parse_string(const char *text, size_t len, const char *name,
			 inifile_section_fn known, inifile_value_fn fn, void *user, char *err)
{
	inifile f = {
		.name = name, .p = text, .end = text + len, .err = err,
		.known = known, .fn = fn, .user = user,
	};
	int ret = ini_parse_stream(read_line, &f, on_value, &f);
	if (ret < 0)
		return byol_err(err, -ENOMEM, "%s: out of memory", name);
	if (f.err_line && (ret == 0 || f.err_line <= ret))
		return f.rc;
	if (ret > 0)
		return byol_err(err, -EINVAL, "%s:%d: expected '[section]' or 'key = value'", name,
				ret);
	return 0;
}

int inifile_parse_file(const char *path, inifile_section_fn known, inifile_value_fn fn,
		       void *user, char *err)
{
	FILE *fp = fopen(path, "rb");
	if (!fp) {
		int e = errno;
		return byol_err(err, -e, "%s: %s", path, strerror(e));
	}
	char *buf = malloc(FILE_MAX + 1);
	if (!buf) {
		fclose(fp);
		return byol_err(err, -ENOMEM, "%s: out of memory", path);
	}
	errno = 0;
	size_t n = fread(buf, 1, FILE_MAX + 1, fp);
	int rc = 0;
	if (ferror(fp)) {
		int e = errno ? errno : EIO;
		rc = byol_err(err, -e, "%s: %s", path, strerror(e));
	} else if (n > FILE_MAX) {
		rc = byol_err(err, -EFBIG, "%s: larger than %d bytes", path, FILE_MAX);
	}
	fclose(fp);
	if (rc == 0)
		rc = inifile_parse_string(buf, n, path, known, fn, user, err);
	free(buf);
	return rc;
}
