/*
 * dconf.c — byold.conf: one table drives parsing, defaults, ranges and --help.
 *
 * The file is read by inifile (libinih with line numbers), like experiment files.
 */
#include "byol/dconf.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "byol/error.h"
#include "byol/inifile.h"

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
	  "file holding the cluster token (mode 0600); empty = $CREDENTIALS_DIRECTORY/token "
	  "when systemd passes it, else no token (loopback only)" },
	{ "max_frame_mb", K_INT, 1, 2047, "256", F(max_frame_mb),
	  "largest frame accepted or sent, in MiB" },
	{ "heartbeat_ms", K_INT, 50, 3600000, "2000", F(heartbeat_ms),
	  "heartbeat period; also the period of the daemon's housekeeping" },
	{ "worker_timeout_ms", K_INT, 0, 86400000, "0", F(worker_timeout_ms),
	  "a worker silent this long is dropped; 0 = three heartbeats" },
	{ "eval_timeout_ms", K_INT, 1000, 86400000, "600000", F(eval_timeout_ms),
	  "silence allowed from a worker running an evaluation job, and the time the job "
	  "may take before it goes to another worker" },
	{ "stall_ms", K_INT, 1000, 86400000, "60000", F(stall_ms),
	  "a step that has not finished after this long is reported in the log" },
	{ "node_timeout_ms", K_INT, 0, 86400000, "0", F(node_timeout_ms),
	  "a tree node unanswered this long also goes to another worker (the first result "
	  "counts); 0 = 10 times the slowest node of the step before, at least 10 s (60 s "
	  "for a run's first step)" },
	{ "start_wait_ms", K_INT, 0, 3600000, "10000", F(start_wait_ms),
	  "the first step of a run waits this long for workers still setting it up" },
	{ "apply_threads", K_INT, 1, 64, "2", F(apply_threads),
	  "threads summing the gradients and running the optimizer" },
	{ "shared_memory", K_INT, 0, 1, "1", F(shared_memory),
	  "1 = workers on the Unix socket, running as byold's user, get and send tensors "
	  "through shared memory (a memfd ring each way) instead of the socket; 0 = never" },
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
	int set_line[N_KEYS];
} ctx;

/* byold.conf has one section, [byold], which may also be left out. */
static int known_section(void *user, const char *section)
{
	return !*section || strcmp(section, "byold") == 0;
}

static int on_value(inifile *f, void *user, const char *section, const char *key, char *val)
{
	ctx *x = user;
	int i = find_key(key);
	if (i < 0)
		return inifile_fail(f, -EINVAL, "%s: unknown key", key);
	if (x->set_line[i])
		return inifile_fail(f, -EINVAL, "%s: duplicate key (first on line %d)", key,
				    x->set_line[i]);
	char why[256];
	if (set_value(x->c, &keys[i], val, why, sizeof(why)) < 0)
		return inifile_fail(f, -EINVAL, "%s: %s", key, why);
	x->set_line[i] = inifile_line(f);
	return 1;
}

int dconf_parse_string(dconf *c, const char *text, const char *name, char *err)
{
	ctx x = {.c = c};
	return inifile_parse_string(text, strlen(text), name ? name : "<string>", known_section,
				    on_value, &x, err);
}

int dconf_parse_file(dconf *c, const char *path, char *err)
{
	ctx x = {.c = c};
	return inifile_parse_file(path, known_section, on_value, &x, err);
}
