/*
 * cli.h — what byolctl's commands share: the daemon to talk to, exit codes, one
 * request/answer call with its error reporting, and the command table.
 *
 * A command lives in its own file (client/cmd_*.c) as a cli_command; main.c
 * lists them in its table, parses the global options, and prints `--help`
 * from each command's synopsis and help text.
 */
#ifndef BYOL_CLIENT_CLI_H
#define BYOL_CLIENT_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "rpc.h"

#define CLI_DEFAULT_SOCKET "/var/lib/byold/byold.sock"
/* where deploy/systemd/byold.socket puts the socket (tried first) */
#define CLI_ACTIVATED_SOCKET "/run/byold.sock"
#define CLI_DEFAULT_TCP "127.0.0.1:7070"
#define CLI_CALL_TIMEOUT_MS 30000

/* Exit status: 0 done; 1 the daemon refused, a run failed, or an input is
 * invalid; 2 a usage error; 3 the daemon cannot be reached. */
enum { EX_OK = 0, EX_NO = 1, EX_USAGE = 2, EX_UNREACHABLE = 3 };

typedef struct {
	const char *tcp, *sock;         /* exactly one is set */
	char *token;                    /* NULL: none */
	char name[64];                  /* the user, for the daemon's log */
	int json;                       /* global --json */
} target;

typedef struct {
	const char *name;
	int (*run)(const target *t, int argc, char **argv);
	const char *synopsis;           /* "submit FILE.ini [--set s.k=v ...] [--watch]" */
	const char *summary;            /* one line for the command list */
	const char *help;               /* the rest of `byolctl CMD --help` */
} cli_command;

/* Connects to t's daemon; reports a failure on stderr. EX_OK or an exit status. */
int cli_connect(const target *t, rpc **out);
/* Sends req and expects an answer of msg_case `want` in *rep (owned by r). An
 * Error answer or a failure is reported on stderr and gives its exit status;
 * *rc_out (may be NULL) receives rpc_call's code. */
int cli_call(rpc *r, Byol__Envelope *req, Byol__Envelope **rep, int want, int *rc_out);
/* Exit status for a negative rpc code. */
int cli_unreachable_code(int rc);
/* A run id: a positive decimal integer. 0 or -1. */
int cli_parse_id(const char *s, uint64_t *out);
/* StatusRequest for run id; *st points into *rep. EX_OK, or an exit status
 * (reported; an unknown run gives EX_NO with "byold has no run N"). */
int cli_get_status(rpc *r, uint64_t id, Byol__Envelope **rep, const Byol__RunStatus **st,
		   int *rc);
/* 1 when status s is final (completed, failed, cancelled); *ok: it completed. */
int cli_status_is_final(const char *s, int *ok);
/* Prints `byolctl CMD --help` for c to f. */
void cli_command_help(const cli_command *c, FILE *f);
/* Reports "byolctl NAME: unexpected argument 'ARG'" plus the synopsis; EX_USAGE. */
int cli_bad_usage(const cli_command *c, const char *arg);
/* 1 when a is "--help" or "-h". */
int cli_is_help(const char *a);
void cli_sleep_ms(unsigned ms);
/* Reads a whole file into a NUL-terminated buffer (free()); NULL with err. */
char *cli_read_file(const char *path, char *err);

/* ---- cmd_watch.c: following a run (watch, submit --watch, resume --watch, cancel) */

#define CLI_RECONNECT_S 120     /* how long byold may stay away from a watch */

typedef struct {
	int json;               /* one JSON object per update, one per line */
	int quiet;              /* print nothing: the caller reports the end */
	unsigned interval_ms;   /* at most one update per this; 0: 200 on a terminal, else 1000 */
	int reconnect_s;        /* 0: CLI_RECONNECT_S */
} cli_watch_opts;

/* Watches run id (on *rp, an open rpc or NULL; replaced when byold comes back
 * after going away) until it ends. EX_OK when it completed; EX_NO when it
 * failed or was cancelled or byold refused (reported on stderr, "no run N");
 * EX_UNREACHABLE when byold cannot be reached at first, or stayed away for the
 * reconnect time. *last (may be NULL) receives the final status (owned by *rp). */
int cli_watch_run(const target *t, rpc **rp, uint64_t id, const cli_watch_opts *o,
		  const Byol__RunStatus **last);
/* A RunStatus as a JSON object (NULL when out of memory); absent figures are null. */
struct cJSON *cli_status_json(const Byol__RunStatus *s);
/* Prints o on one line and frees it; EX_OK, or EX_NO for NULL (out of memory). */
int cli_print_json(struct cJSON *o);

/* The commands (each file exports its own). */
extern const cli_command cmd_submit, cmd_status, cmd_list, cmd_history;
extern const cli_command cmd_export, cmd_compare, cmd_plot, cmd_report;
extern const cli_command cmd_watch, cmd_show, cmd_cancel, cmd_resume, cmd_workers;

#endif
