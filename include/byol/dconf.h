/*
 * dconf.h — byold's own configuration: the daemon file (byold.conf) and the
 * command line.
 *
 * One table (daemon/dconf.c) of {name, type, min, max, default, field, help}
 * serves the INI parser (libinih), the defaults, the range checks, the command
 * line options (--listen, --state-dir, ... set the key of the same name) and
 * `byold --help`. Precedence: defaults, then the file, then the command line.
 *
 * File syntax: the keys live in a `[byold]` section (keys before any section are
 * taken as [byold] too); ';' and '#' start comments, as in experiment files. An
 * unknown section or key, a duplicate key or a value that does not parse or is
 * out of range is an error naming the file and line ("byold.conf:4:
 * heartbeat_ms: 5 is below the minimum 50").
 *
 *   [byold]
 *   listen = 127.0.0.1:7070    ; TCP address for workers and clients
 *   state_dir = /var/lib/byold ; byold.db, runs/<id>/step-<k>.safetensors
 *   socket =                   ; Unix socket; empty = STATE_DIR/byold.sock
 *   token_file = /etc/byold/token
 *   heartbeat_ms = 2000
 *   log_level = info
 */
#ifndef BYOL_DCONF_H
#define BYOL_DCONF_H

#include <stdio.h>

#define DCONF_STR_LEN 1024

typedef enum { DLOG_DEBUG, DLOG_INFO, DLOG_WARN, DLOG_ERROR } dlog_level;

typedef struct {
	char listen[DCONF_STR_LEN];     /* "127.0.0.1:7070"; "" or "none": no TCP */
	char socket[DCONF_STR_LEN];     /* "": STATE_DIR/byold.sock; "none": no socket */
	char state_dir[DCONF_STR_LEN];  /* "/var/lib/byold" */
	char token_file[DCONF_STR_LEN]; /* "": no token (loopback and the socket only) */
	int max_frame_mb;               /* 256: largest frame accepted or sent */
	int heartbeat_ms;               /* 2000: heartbeats and the cron period */
	int worker_timeout_ms;          /* 0: 3 * heartbeat_ms; silence that drops a worker */
	int eval_timeout_ms;            /* 600000: silence allowed while evaluating */
	int stall_ms;                   /* 60000: a step older than this is reported */
	int node_timeout_ms;            /* 0 (automatic): a tree node unanswered this
					 * long goes to a second worker too */
	int start_wait_ms;              /* 10000: a run's first step waits this long
					 * for workers still setting up */
	int shared_memory;              /* 1: shm attachments on the Unix socket */
	int apply_threads;              /* 2: threads of the optimizer step */
	int list_limit;                 /* 50: runs in a ListReply by default */
	dlog_level log_level;           /* info */
} dconf;

/* Fills every default. */
void dconf_defaults(dconf *c);

/* Applies the INI file at path over *c (call dconf_defaults first). Returns 0,
 * -EINVAL with "path:line: key: what", or -errno ("path: No such file or
 * directory"). On failure *c may be partly changed. */
int dconf_parse_file(dconf *c, const char *path, char *err);
/* The same from a NUL-terminated string; name stands for the file. */
int dconf_parse_string(dconf *c, const char *text, const char *name, char *err);

/* Sets one key from its text (the command line). Returns 0 or -EINVAL with
 * "key: what" (unknown key, bad value); on failure *c is unchanged. */
int dconf_set(dconf *c, const char *key, const char *value, char *err);

/* The derived values: the worker timeout in ms (worker_timeout_ms, or three
 * heartbeats when 0) and the socket path (into out, DCONF_STR_LEN bytes; "" when
 * there is none). */
int dconf_worker_timeout(const dconf *c);
void dconf_socket_path(const dconf *c, char *out);

/* "debug", "info", ...; "?" out of range. */
const char *dconf_level_name(dlog_level lv);

/* Writes one line per key: "  name  type  default  help". */
void dconf_print_help(FILE *f);

#endif
