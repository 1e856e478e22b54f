/*
 * dconf.c — byold.conf: one table drives parsing, defaults, ranges and --help.
 *
 * libinih as Debian builds it does not pass line numbers to the handler, so the
 * file goes through ini_parse_stream() with a line reader that counts physical
 * lines (as lib/config.c does for experiment files).
 */
#include "byol/dconf.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "byol/error.h"

typedef enum { K_STR, K_INT, K_LEVEL } ktype;

typedef struct {
	const char *name;
	ktype type;
	long min, max;          /* K_INT */
	const char *def;        /* default, as the file writes it */
	size_t off;
	const char *help;
} dkey;

#define F(field) offsetof(dconf, field)
static const dkey keys[] = {
	{ "listen", K_STR, 0, 0, "127.0.0.1:7070", F(listen),
	  "TCP address (host:port) for workers and clients; none = no TCP" },
	{ "socket", K_STR, 0, 0, "", F(socket),
	  "Unix socket for local clients; empty = STATE_DIR/byold.sock; none = no socket" },
	{ "state_dir", K_STR, 0, 0, "/var/lib/byold", F(state_dir),
	  "directory of byold.db and runs/<id>/step-<k>.safetensors" },
	{ "token_file", K_STR, 0, 0, "", F(token_file),
	  "file holding the cluster token (mode 0600); empty = no token, loopback only" },
	{ "max_frame_mb", K_INT, 1, 4095, "256", F(max_frame_mb),
	  "largest frame accepted or sent, in MiB" },
	{ "heartbeat_ms", K_INT, 50, 3600000, "2000", F(heartbeat_ms),
	  "heartbeat period; also the period of the daemon's housekeeping" },
	{ "worker_timeout_ms", K_INT, 0, 86400000, "0", F(worker_timeout_ms),
	  "a worker silent this long is dropped; 0 = three heartbeats" },
	{ "eval_timeout_ms", K_INT, 1000, 86400000, "600000", F(eval_timeout_ms),
	  "silence allowed from a worker running an evaluation job" },
	{ "stall_ms", K_INT, 1000, 86400000, "60000", F(stall_ms),
	  "a step that has not finished after this long is reported in the log" },
	{ "start_wait_ms", K_INT, 0, 3600000, "10000", F(start_wait_ms),
	  "the first step of a run waits this long for workers still setting it up" },
	{ "apply_threads", K_INT, 1, 64, "2", F(apply_threads),
	  "threads summing the gradients and running the optimizer" },
	{ "list_limit", K_INT, 1, 100000, "50", F(list_limit),
	  "runs in a list answer when the client asks for no limit" },
	{ "log_level", K_LEVEL, 0, 0, "info", F(log_level),
	  "least severe log line written: debug, info, warn or error" },
};
#define N_KEYS ((int)(sizeof(keys) / sizeof(keys[0])))

static const char *const level_names[] = { "debug", "info", "warn", "error" };

const char *dconf_level_name(dlog_level lv)
{
	return lv >= DLOG_DEBUG && lv <= DLOG_ERROR ? level_names[lv] : "?";
}

static int find_key(const char *name)
{
	for (int i = 0; i < N_KEYS; i++)
		if (strcmp(keys[i].name, name) == 0)
			return i;
	return -1;
}

/* Parses value for key k into *c. why receives the reason on failure. */
static int set_value(dconf *c, const dkey *k, const char *value, char *why, size_t whylen)
{
	char *field = (char *)c + k->off;
	switch (k->type) {
	case K_STR:
		if (strlen(value) >= DCONF_STR_LEN) {
			snprintf(why, whylen, "longer than %d bytes", DCONF_STR_LEN - 1);
			return -EINVAL;
		}
		strcpy(field, value);
		return 0;
	case K_INT: {
		char *end;
		errno = 0;
		long v = strtol(value, &end, 10);
		if (!*value || *end || errno) {
			snprintf(why, whylen, "'%s' is not an integer", value);
			return -EINVAL;
		}
		if (v < k->min || v > k->max) {
			snprintf(why, whylen, "%ld is %s the %s %ld", v,
				 v < k->min ? "below" : "above", v < k->min ? "minimum" : "maximum",
				 v < k->min ? k->min : k->max);
			return -EINVAL;
		}
		*(int *)field = (int)v;
		return 0;
	}
	case K_LEVEL:
		for (int i = 0; i < 4; i++)
			if (strcmp(value, level_names[i]) == 0) {
				*(dlog_level *)field = (dlog_level)i;
				return 0;
			}
		snprintf(why, whylen, "'%s' is not one of debug, info, warn, error", value);
		return -EINVAL;
	}
	return -EINVAL;
}

void dconf_defaults(dconf *c)
{
	char why[256];
	memset(c, 0, sizeof(*c));
	for (int i = 0; i < N_KEYS; i++)
		set_value(c, &keys[i], keys[i].def, why, sizeof(why));
}

int dconf_set(dconf *c, const char *key, const char *value, char *err)
{
	int i = find_key(key);
	if (i < 0)
		return byol_err(err, -EINVAL, "%s: unknown key", key);
	dconf tmp = *c;
	char why[256];
	if (set_value(&tmp, &keys[i], value, why, sizeof(why)) < 0)
		return byol_err(err, -EINVAL, "%s: %s", key, why);
	*c = tmp;
	return 0;
}

int dconf_worker_timeout(const dconf *c)
{
	return c->worker_timeout_ms > 0 ? c->worker_timeout_ms : 3 * c->heartbeat_ms;
}

void dconf_socket_path(const dconf *c, char *out)
{
	if (strcmp(c->socket, "none") == 0)
		out[0] = '\0';
	else if (c->socket[0])
		snprintf(out, DCONF_STR_LEN, "%s", c->socket);
	else
		snprintf(out, DCONF_STR_LEN, "%.*s/byold.sock", DCONF_STR_LEN - 12, c->state_dir);
}

void dconf_print_help(FILE *f)
{
	for (int i = 0; i < N_KEYS; i++) {
		const dkey *k = &keys[i];
		char type[64];
		if (k->type == K_INT)
			snprintf(type, sizeof(type), "int %ld..%ld", k->min, k->max);
		else if (k->type == K_LEVEL)
			snprintf(type, sizeof(type), "debug|info|warn|error");
		else
			snprintf(type, sizeof(type), "string");
		fprintf(f, "  %-18s %-22s %-16s %s\n", k->name, type,
			k->def[0] ? k->def : "\"\"", k->help);
	}
}

/* ---- the file ---- */

typedef struct {
	dconf *c;
	const char *name;
	const char *p, *end;
	int line;
	int err_line, rc;
	char *err;
	int set_line[N_KEYS];
} ctx;

static int fail(ctx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(ctx *x, const char *fmt, ...)
{
	if (x->err_line)
		return 0;
	x->err_line = x->line;
	x->rc = -EINVAL;
	if (x->err) {
		int n = snprintf(x->err, BYOL_ERR_LEN, "%s:%d: ", x->name, x->line);
		va_list ap;
		va_start(ap, fmt);
		if (n >= 0 && n < BYOL_ERR_LEN)
			vsnprintf(x->err + n, (size_t)(BYOL_ERR_LEN - n), fmt, ap);
		va_end(ap);
	}
	return 0;
}

/* One physical line per call, leading blanks stripped, section names checked. */
static char *read_line(char *str, int num, void *stream)
{
	ctx *x = stream;
	if (x->p >= x->end)
		return NULL;
	const char *nl = memchr(x->p, '\n', (size_t)(x->end - x->p));
	const char *eol = nl ? nl : x->end;
	const char *s = x->p;
	x->p = nl ? nl + 1 : x->end;
	x->line++;
	while (s < eol && (*s == ' ' || *s == '\t'))
		s++;
	size_t n = (size_t)(eol - s);
	if (n && s[n - 1] == '\r')
		n--;
	if (memchr(s, '\0', n)) {
		fail(x, "NUL byte in the line");
		n = 0;
	} else if (n + 2 > (size_t)num) {
		fail(x, "line longer than %d characters", num - 2);
		n = 0;
	}
	memcpy(str, s, n);
	str[n] = '\n';
	str[n + 1] = '\0';
	if (n && str[0] == '[') {
		char *close = memchr(str, ']', n);
		if (close) {
			*close = '\0';
			if (strcmp(str + 1, "byold") != 0)
				fail(x, "unknown section [%s] (expected [byold])", str + 1);
			*close = ']';
		}
	}
	return str;
}

static int on_value(void *user, const char *section, const char *key, const char *value)
{
	ctx *x = user;
	char val[DCONF_STR_LEN + 64];
	if (*section && strcmp(section, "byold") != 0)
		return fail(x, "unknown section [%s] (expected [byold])", section);
	if (strlen(value) >= sizeof(val))
		return fail(x, "%s: value too long", key);
	strcpy(val, value);
	for (char *h = strchr(val, '#'); h; h = strchr(h + 1, '#'))
		if (h > val && isspace((unsigned char)h[-1])) {
			*h = '\0';
			break;
		}
	for (size_t n = strlen(val); n && isspace((unsigned char)val[n - 1]); n--)
		val[n - 1] = '\0';
	int i = find_key(key);
	if (i < 0)
		return fail(x, "%s: unknown key", key);
	if (x->set_line[i])
		return fail(x, "%s: duplicate key (first on line %d)", key, x->set_line[i]);
	char why[256];
	if (set_value(x->c, &keys[i], val, why, sizeof(why)) < 0)
		return fail(x, "%s: %s", key, why);
	x->set_line[i] = x->line;
	return 1;
}

static int parse(dconf *c, const char *text, size_t len, const char *name, char *err)
{
	ctx *x = calloc(1, sizeof(*x));
	if (!x)
		return byol_err(err, -ENOMEM, "%s: out of memory", name);
	x->c = c;
	x->name = name;
	x->p = text;
	x->end = text + len;
	x->err = err;
	int ret = ini_parse_stream(read_line, x, on_value, x);
	int rc = 0;
	if (ret < 0)
		rc = byol_err(err, -ENOMEM, "%s: out of memory", name);
	else if (x->err_line && (ret == 0 || x->err_line <= ret))
		rc = x->rc;
	else if (ret > 0)
		rc = byol_err(err, -EINVAL, "%s:%d: expected '[section]' or 'key = value'", name, ret);
	free(x);
	return rc;
}

int dconf_parse_string(dconf *c, const char *text, const char *name, char *err)
{
	return parse(c, text, strlen(text), name ? name : "<string>", err);
}

int dconf_parse_file(dconf *c, const char *path, char *err)
{
	enum { MAX_FILE = 1 << 20 };
	FILE *f = fopen(path, "rb");
	if (!f) {
		int e = errno;
		return byol_err(err, -e, "%s: %s", path, strerror(e));
	}
	char *buf = malloc(MAX_FILE + 1);
	if (!buf) {
		fclose(f);
		return byol_err(err, -ENOMEM, "%s: out of memory", path);
	}
	size_t n = fread(buf, 1, MAX_FILE + 1, f);
	int rc = 0;
	if (ferror(f))
		rc = byol_err(err, -EIO, "%s: read error", path);
	else if (n > MAX_FILE)
		rc = byol_err(err, -EFBIG, "%s: larger than %d bytes", path, MAX_FILE);
	fclose(f);
	if (rc == 0)
		rc = parse(c, buf, n, path, err);
	free(buf);
	return rc;
}
