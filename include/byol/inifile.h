/*
 * inifile.h — INI files with line numbers, on top of libinih.
 *
 * Debian's libinih hands its handler no line number, strips only " ;" comments
 * and splits long lines silently; byold's files (experiments, byold.conf) need
 * every error to name its file and line. inifile feeds libinih one physical
 * line at a time through its own reader and adds: the line number of the value
 * being handled, " #" comments after values, a UTF-8 byte order mark, CRLF
 * endings, indented lines (not taken as continuations), and refusals of NUL
 * bytes, lines over libinih's limit, unknown sections (even empty ones) and keys
 * outside any section. Only the first error is kept; it reads
 * "NAME:LINE: what was wrong".
 */
#ifndef BYOL_INIFILE_H
#define BYOL_INIFILE_H

#include <stddef.h>

typedef struct inifile inifile;

/* 1 when the section name is known; asked for "" when a key comes before any
 * section header (1: allowed). */
typedef int (*inifile_section_fn)(void *user, const char *section);
/* One value: value is the text without comment or trailing blanks (writable,
 * valid during the call). Return 1 to go on, or inifile_fail(...) (0). */
typedef int (*inifile_value_fn)(inifile *f, void *user, const char *section, const char *key,
				char *value);

/* Parses text (len bytes; `name` stands for the file in messages). Returns 0, or
 * the code of the first failure with its message in err. */
int inifile_parse_string(const char *text, size_t len, const char *name,
			 inifile_section_fn known, inifile_value_fn fn, void *user, char *err);
/* Reads path (at most 1 MiB) and parses it. */
int inifile_parse_file(const char *path, inifile_section_fn known, inifile_value_fn fn,
		       void *user, char *err);

/* The physical line of the value being handled. */
int inifile_line(const inifile *f);
/* Records the first failure ("NAME:LINE: " + the message) and returns 0, so a
 * value handler can `return inifile_fail(f, -EINVAL, "...")`. */
int inifile_fail(inifile *f, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
