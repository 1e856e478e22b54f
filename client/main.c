/*
 * byolctl — the byold client: submit experiments, follow and list runs.
 *
 * Exit status: 0 done; 1 the daemon refused, a run failed, or the experiment file
 * is invalid; 2 a usage error; 3 the daemon cannot be reached (the message names
 * the address).
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "byol/auth.h"
#include "byol/config.h"
#include "byol/error.h"
#include "rpc.h"

#define DEFAULT_SOCKET "/var/lib/byold/byold.sock"
#define DEFAULT_TCP "127.0.0.1:7070"
#define POLL_MS 500
#define CALL_TIMEOUT_MS 30000
#define RECONNECT_FOR_S 120     /* --wait: how long the daemon may stay away */

enum { EX_OK = 0, EX_NO = 1, EX_USAGE = 2, EX_UNREACHABLE = 3 };

typedef struct {
	const char *tcp, *sock;
	char *token;
	char name[64];
} target;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: byolctl [--coordinator HOST:PORT | --socket PATH] [--token-file FILE] COMMAND\n"
		"\n"
		"commands:\n"
		"  submit FILE.ini [--set section.key=value ...] [--wait]\n"
		"                      check the experiment here, submit it, print its run ids;\n"
		"                      --wait: follow the runs to their end (exit 0 only if all\n"
		"                      completed)\n"
		"  status RUN [--json] a run's status, step, loss and latest checkpoint\n"
		"  list [--filter EXPR] [--limit N]\n"
		"                      one line per run, newest first\n"
		"\n"
		"The daemon: --socket, else $BYOLD_SOCKET, else " DEFAULT_SOCKET " when it exists,\n"
		"else TCP " DEFAULT_TCP ". Token: --token-file, else $BYOLD_TOKEN_FILE.\n"
		"Exit status: 0 ok, 1 refused or failed, 2 usage, 3 the daemon cannot be reached.\n");
}

static int unreachable_code(int rc)
{
	return rc == -EACCES || rc == -EPROTO || rc == -ENOMEM ? EX_NO : EX_UNREACHABLE;
}

static int connect_to(const target *t, rpc **out)
{
	char err[BYOL_ERR_LEN];
	int rc = rpc_open(out, t->tcp, t->sock, t->token, t->name, CALL_TIMEOUT_MS, err);
	if (rc < 0) {
		fprintf(stderr, "byolctl: %s\n", err);
		return rc == -EACCES ? EX_NO : EX_UNREACHABLE;
	}
	return EX_OK;
}

/* One request, one answer; an Error answer is reported and gives EX_NO. */
static int call(rpc *r, Byol__Envelope *req, Byol__Envelope **rep, int want, int *rc_out)
{
	char err[BYOL_ERR_LEN];
	int rc = rpc_call(r, req, rep, err);
	if (rc_out)
		*rc_out = rc;
	if (rc < 0) {
		fprintf(stderr, "byolctl: %s\n", err);
		return unreachable_code(rc);
	}
	if ((*rep)->msg_case == BYOL__ENVELOPE__MSG_ERROR) {
		fprintf(stderr, "byolctl: byold: %s\n", (*rep)->error->message);
		return EX_NO;
	}
	if ((int)(*rep)->msg_case != want) {
		fprintf(stderr, "byolctl: unexpected answer from byold at %s (message %d)\n",
			rpc_address(r), (int)(*rep)->msg_case);
		return EX_NO;
	}
	return EX_OK;
}

/* ---- status ----------------------------------------------------------------- */

static int status_is_final(const char *s, int *ok)
{
	*ok = strcmp(s, "completed") == 0 || strcmp(s, "done") == 0;
	return *ok || strcmp(s, "failed") == 0 || strcmp(s, "cancelled") == 0;
}

static void print_run_line(const Byol__RunStatus *s)
{
	char loss[32] = "-";
	if (s->step > 0)
		snprintf(loss, sizeof(loss), "%.4f", s->loss);
	printf("%llu\t%-11s\t%llu/%llu\tloss %s\t%s\n", (unsigned long long)s->run_id,
	       s->status, (unsigned long long)s->step, (unsigned long long)s->total_steps, loss,
	       s->name);
}

static void print_status_human(const Byol__RunStatus *s)
{
	printf("run %llu (%s): %s, step %llu/%llu", (unsigned long long)s->run_id, s->name,
	       s->status, (unsigned long long)s->step, (unsigned long long)s->total_steps);
	if (s->step > 0)
		printf(", loss %.4f", s->loss);
	if (s->knn_accuracy > 0)
		printf(", knn %.4f", s->knn_accuracy);
	if (s->probe_accuracy > 0)
		printf(", probe %.4f", s->probe_accuracy);
	printf("\n");
	if (s->checkpoint && s->checkpoint[0])
		printf("checkpoint %s (step %llu)\n", s->checkpoint,
		       (unsigned long long)s->checkpoint_step);
	if (s->message && s->message[0])
		printf("message %s\n", s->message);
}

static int print_status_json(const Byol__RunStatus *s)
{
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return -1;
	cJSON_AddNumberToObject(o, "run_id", (double)s->run_id);
	cJSON_AddNumberToObject(o, "experiment_id", (double)s->experiment_id);
	cJSON_AddStringToObject(o, "name", s->name);
	cJSON_AddStringToObject(o, "status", s->status);
	cJSON_AddNumberToObject(o, "step", (double)s->step);
	cJSON_AddNumberToObject(o, "total_steps", (double)s->total_steps);
	if (isfinite(s->loss))
		cJSON_AddNumberToObject(o, "loss", s->loss);
	else
		cJSON_AddNullToObject(o, "loss");
	if (isfinite(s->knn_accuracy) && s->knn_accuracy > 0)
		cJSON_AddNumberToObject(o, "knn_accuracy", s->knn_accuracy);
	else
		cJSON_AddNullToObject(o, "knn_accuracy");
	if (s->checkpoint && s->checkpoint[0])
		cJSON_AddStringToObject(o, "checkpoint", s->checkpoint);
	else
		cJSON_AddNullToObject(o, "checkpoint");
	if (s->checkpoint && s->checkpoint[0])
		cJSON_AddNumberToObject(o, "checkpoint_step", (double)s->checkpoint_step);
	else
		cJSON_AddNullToObject(o, "checkpoint_step");
	if (isfinite(s->probe_accuracy) && s->probe_accuracy > 0)
		cJSON_AddNumberToObject(o, "probe_accuracy", s->probe_accuracy);
	else
		cJSON_AddNullToObject(o, "probe_accuracy");
	cJSON_AddNumberToObject(o, "collapse", isfinite(s->collapse) ? s->collapse : 0);
	cJSON_AddNumberToObject(o, "img_per_s", isfinite(s->img_per_s) ? s->img_per_s : 0);
	cJSON_AddStringToObject(o, "message", s->message ? s->message : "");
	cJSON_AddNumberToObject(o, "updated_unix_ms", (double)s->updated_unix_ms);
	char *txt = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (!txt)
		return -1;
	printf("%s\n", txt);
	free(txt);
	return 0;
}

/* Asks for run id; *st points into *rep. EX_OK, or an exit status (reported). */
static int get_status(rpc *r, uint64_t id, Byol__Envelope **rep, const Byol__RunStatus **st,
		      int *rc)
{
	Byol__StatusRequest sr = BYOL__STATUS_REQUEST__INIT;
	Byol__Envelope e = BYOL__ENVELOPE__INIT;
	sr.run_id = id;
	e.msg_case = BYOL__ENVELOPE__MSG_STATUS_REQUEST;
	e.status_request = &sr;
	int ex = call(r, &e, rep, BYOL__ENVELOPE__MSG_STATUS_REPLY, rc);
	if (ex != EX_OK)
		return ex;
	for (size_t i = 0; i < (*rep)->status_reply->n_runs; i++)
		if ((*rep)->status_reply->runs[i]->run_id == id) {
			*st = (*rep)->status_reply->runs[i];
			return EX_OK;
		}
	fprintf(stderr, "byolctl: byold has no run %llu\n", (unsigned long long)id);
	return EX_NO;
}

static int parse_id(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	if (!*s || *end || v == 0 || s[0] == '-')
		return -1;
	*out = v;
	return 0;
}

static int cmd_status(const target *t, int argc, char **argv)
{
	int json = 0;
	const char *run = NULL;
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else if (!run && argv[i][0] != '-')
			run = argv[i];
		else
			return usage(stderr), EX_USAGE;
	}
	uint64_t id;
	if (!run || parse_id(run, &id) < 0) {
		fprintf(stderr, "byolctl: status: expected a run id\n");
		return EX_USAGE;
	}
	rpc *r;
	int ex = connect_to(t, &r);
	if (ex != EX_OK)
		return ex;
	Byol__Envelope *rep;
	const Byol__RunStatus *st = NULL;
	ex = get_status(r, id, &rep, &st, NULL);
	if (ex == EX_OK) {
		if (json)
			print_status_json(st);
		else
			print_status_human(st);
	}
	rpc_close(r);
	return ex;
}

/* ---- list ------------------------------------------------------------------- */

static int cmd_list(const target *t, int argc, char **argv)
{
	Byol__ListRequest lr = BYOL__LIST_REQUEST__INIT;
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--filter") == 0 && i + 1 < argc)
			lr.filter = argv[++i];
		else if (strcmp(argv[i], "--limit") == 0 && i + 1 < argc)
			lr.limit = (uint32_t)strtoul(argv[++i], NULL, 10);
		else
			return usage(stderr), EX_USAGE;
	}
	rpc *r;
	int ex = connect_to(t, &r);
	if (ex != EX_OK)
		return ex;
	Byol__Envelope e = BYOL__ENVELOPE__INIT, *rep;
	e.msg_case = BYOL__ENVELOPE__MSG_LIST_REQUEST;
	e.list_request = &lr;
	ex = call(r, &e, &rep, BYOL__ENVELOPE__MSG_LIST_REPLY, NULL);
	if (ex == EX_OK)
		for (size_t i = 0; i < rep->list_reply->n_runs; i++)
			print_run_line(rep->list_reply->runs[i]);
	rpc_close(r);
	return ex;
}

/* ---- submit ----------------------------------------------------------------- */

static char *read_file(const char *path, char *err)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		byol_err(err, -errno, "%s: %s", path, strerror(errno));
		return NULL;
	}
	char *buf = NULL;
	size_t n = 0, cap = 0;
	for (;;) {
		if (n + 4096 + 1 > cap) {
			char *nb = realloc(buf, cap = cap * 2 + 8192);
			if (!nb) {
				free(buf);
				fclose(f);
				byol_err(err, -ENOMEM, "%s: out of memory", path);
				return NULL;
			}
			buf = nb;
		}
		size_t got = fread(buf + n, 1, 4096, f);
		n += got;
		if (got < 4096)
			break;
	}
	int bad = ferror(f);
	fclose(f);
	if (bad) {
		free(buf);
		byol_err(err, -EIO, "%s: read error", path);
		return NULL;
	}
	buf[n] = 0;
	return buf;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* Follows runs ids[0..n) until each has ended; reconnects when the daemon goes
 * away (for at most RECONNECT_FOR_S seconds at a time). */
static int wait_runs(const target *t, rpc **rp, const uint64_t *ids, int n)
{
	int *done = calloc((size_t)n, sizeof(int));
	char **last = calloc((size_t)n, sizeof(char *));
	int ex = EX_OK, all_ok = 1, left = n;
	time_t away_since = 0;
	if (!done || !last) {
		free(done);
		free(last);
		return EX_NO;
	}
	while (left > 0) {
		if (!*rp) {
			char err[BYOL_ERR_LEN];
			int rc = rpc_open(rp, t->tcp, t->sock, t->token, t->name, CALL_TIMEOUT_MS,
					  err);
			if (rc < 0) {
				if (rc == -EACCES || time(NULL) - away_since > RECONNECT_FOR_S) {
					fprintf(stderr, "byolctl: %s\n", err);
					ex = rc == -EACCES ? EX_NO : EX_UNREACHABLE;
					goto out;
				}
				sleep_ms(POLL_MS);
				continue;
			}
			fprintf(stderr, "byolctl: reconnected to byold at %s\n", rpc_address(*rp));
		}
		for (int i = 0; i < n; i++) {
			if (done[i])
				continue;
			Byol__Envelope *rep;
			const Byol__RunStatus *st = NULL;
			int rc = 0;
			int x = get_status(*rp, ids[i], &rep, &st, &rc);
			if (rc < 0) {
				if (x != EX_UNREACHABLE) {
					ex = x;
					goto out;
				}
				fprintf(stderr, "byolctl: waiting for byold to come back\n");
				rpc_close(*rp);
				*rp = NULL;
				away_since = time(NULL);
				break;
			}
			if (x != EX_OK) {
				ex = x;
				goto out;
			}
			if (!last[i] || strcmp(last[i], st->status) != 0) {
				fprintf(stderr, "byolctl: run %llu: %s (step %llu/%llu)\n",
					(unsigned long long)ids[i], st->status,
					(unsigned long long)st->step,
					(unsigned long long)st->total_steps);
				free(last[i]);
				last[i] = strdup(st->status);
			}
			int ok;
			if (status_is_final(st->status, &ok)) {
				done[i] = 1;
				left--;
				if (!ok) {
					all_ok = 0;
					if (st->message && st->message[0])
						fprintf(stderr, "byolctl: run %llu %s: %s\n",
							(unsigned long long)ids[i], st->status,
							st->message);
				}
			}
		}
		if (left > 0 && *rp)
			sleep_ms(POLL_MS);
	}
	ex = all_ok ? EX_OK : EX_NO;
out:
	for (int i = 0; i < n; i++)
		free(last[i]);
	free(last);
	free(done);
	return ex;
}

static int cmd_submit(const target *t, int argc, char **argv)
{
	const char *path = NULL;
	int wait = 0, nsets = 0;
	char **sets = calloc((size_t)argc + 1, sizeof(char *));
	if (!sets)
		return EX_NO;
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--wait") == 0)
			wait = 1;
		else if (strcmp(argv[i], "--set") == 0 && i + 1 < argc)
			sets[nsets++] = argv[++i];
		else if (strncmp(argv[i], "--set=", 6) == 0)
			sets[nsets++] = argv[i] + 6;
		else if (!path && argv[i][0] != '-')
			path = argv[i];
		else {
			free(sets);
			return usage(stderr), EX_USAGE;
		}
	}
	if (!path) {
		free(sets);
		fprintf(stderr, "byolctl: submit: expected an experiment file\n");
		return EX_USAGE;
	}
	/* the daemon's own checks, here first: a bad line is named before any
	 * connection is made */
	char err[BYOL_ERR_LEN];
	experiment_config cfg;
	char *text = NULL;
	int ex = EX_NO;
	rpc *r = NULL;
	if (config_parse_file(&cfg, path, err) < 0) {
		fprintf(stderr, "byolctl: %s\n", err);
		goto out;
	}
	for (int i = 0; i < nsets; i++)
		if (config_set(&cfg, sets[i], err) < 0) {
			fprintf(stderr, "byolctl: %s\n", err);
			goto out;
		}
	if (config_validate(&cfg, err) < 0) {
		fprintf(stderr, "byolctl: %s: %s\n", path, err);
		goto out;
	}
	if (!(text = read_file(path, err))) {
		fprintf(stderr, "byolctl: %s\n", err);
		goto out;
	}
	if ((ex = connect_to(t, &r)) != EX_OK)
		goto out;
	Byol__Submit sub = BYOL__SUBMIT__INIT;
	Byol__Envelope e = BYOL__ENVELOPE__INIT, *rep;
	sub.config_case = BYOL__SUBMIT__CONFIG_INI_TEXT;
	sub.ini_text = text;
	sub.overrides = sets;
	sub.n_overrides = (size_t)nsets;
	sub.source = (char *)path;
	e.msg_case = BYOL__ENVELOPE__MSG_SUBMIT;
	e.submit = &sub;
	if ((ex = call(r, &e, &rep, BYOL__ENVELOPE__MSG_SUBMIT_REPLY, NULL)) != EX_OK)
		goto out;
	size_t n = rep->submit_reply->n_run_id;
	uint64_t *ids = malloc((n ? n : 1) * sizeof(uint64_t));
	if (!ids) {
		ex = EX_NO;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		ids[i] = rep->submit_reply->run_id[i];
		printf("%llu\n", (unsigned long long)ids[i]);
	}
	fflush(stdout);
	if (wait)
		ex = wait_runs(t, &r, ids, (int)n);
	free(ids);
out:
	rpc_close(r);
	free(text);
	free(sets);
	return ex;
}

/* ---- main ------------------------------------------------------------------- */

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"coordinator", required_argument, 0, 'C'},
		{"socket", required_argument, 0, 'S'},
		{"token-file", required_argument, 0, 'T'},
		{"help", no_argument, 0, 'h'},
		{0, 0, 0, 0},
	};
	target t = {0};
	const char *token_file = NULL;
	int c;
	/* "+": options after the command belong to the command */
	while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		switch (c) {
		case 'C': t.tcp = optarg; break;
		case 'S': t.sock = optarg; break;
		case 'T': token_file = optarg; break;
		case 'h': usage(stdout); return EX_OK;
		default: usage(stderr); return EX_USAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return EX_USAGE;
	}
	if (t.tcp && t.sock) {
		fprintf(stderr, "byolctl: give --coordinator or --socket, not both\n");
		return EX_USAGE;
	}
	if (!t.tcp && !t.sock) {
		struct stat sb;
		const char *env = getenv("BYOLD_SOCKET");
		if (env && env[0])
			t.sock = env;
		else if (stat(DEFAULT_SOCKET, &sb) == 0)
			t.sock = DEFAULT_SOCKET;
		else
			t.tcp = DEFAULT_TCP;
	}
	if (!token_file && getenv("BYOLD_TOKEN_FILE") && getenv("BYOLD_TOKEN_FILE")[0])
		token_file = getenv("BYOLD_TOKEN_FILE");
	const char *cmd = argv[optind];
	int known = !strcmp(cmd, "submit") || !strcmp(cmd, "status") || !strcmp(cmd, "list");
	if (!known) {
		fprintf(stderr, "byolctl: unknown command '%s'\n", cmd);
		usage(stderr);
		return EX_USAGE;
	}
	char err[BYOL_ERR_LEN];
	if (token_file && auth_token_load(token_file, &t.token, NULL, err) < 0) {
		fprintf(stderr, "byolctl: %s\n", err);
		return EX_USAGE;
	}
	const char *user = getenv("USER");
	snprintf(t.name, sizeof(t.name), "%.40s", user && user[0] ? user : "byolctl");
	int sub_argc = argc - optind - 1;
	char **sub_argv = argv + optind + 1;
	int ex = !strcmp(cmd, "submit")   ? cmd_submit(&t, sub_argc, sub_argv)
		 : !strcmp(cmd, "status") ? cmd_status(&t, sub_argc, sub_argv)
					  : cmd_list(&t, sub_argc, sub_argv);
	auth_token_free(t.token);
	return ex;
}
