/*
 * cmd_run.c — byolctl submit and status (list and history: cmd_history.c).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "byol/config.h"
#include "cli.h"

#define POLL_MS 500
#define RECONNECT_FOR_S 120     /* --wait: how long the daemon may stay away */

/* ---- status ----------------------------------------------------------------- */

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

static int status_main(const target *t, int argc, char **argv)
{
	int json = t->json;
	const char *run = NULL;
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else if (!run && argv[i][0] != '-')
			run = argv[i];
		else
			return cli_bad_usage(&cmd_status, argv[i]);
	}
	uint64_t id;
	if (!run || cli_parse_id(run, &id) < 0) {
		fprintf(stderr, "byolctl: status: expected a run id\n");
		return EX_USAGE;
	}
	rpc *r;
	int ex = cli_connect(t, &r);
	if (ex != EX_OK)
		return ex;
	Byol__Envelope *rep;
	const Byol__RunStatus *st = NULL;
	ex = cli_get_status(r, id, &rep, &st, NULL);
	if (ex == EX_OK) {
		if (json)
			print_status_json(st);
		else
			print_status_human(st);
	}
	rpc_close(r);
	return ex;
}

/* ---- submit ----------------------------------------------------------------- */

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
			int rc = rpc_open(rp, t->tcp, t->sock, t->token, t->name, CLI_CALL_TIMEOUT_MS,
					  err);
			if (rc < 0) {
				if (rc == -EACCES || time(NULL) - away_since > RECONNECT_FOR_S) {
					fprintf(stderr, "byolctl: %s\n", err);
					ex = rc == -EACCES ? EX_NO : EX_UNREACHABLE;
					goto out;
				}
				cli_sleep_ms(POLL_MS);
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
			int x = cli_get_status(*rp, ids[i], &rep, &st, &rc);
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
			if (cli_status_is_final(st->status, &ok)) {
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
			cli_sleep_ms(POLL_MS);
	}
	ex = all_ok ? EX_OK : EX_NO;
out:
	for (int i = 0; i < n; i++)
		free(last[i]);
	free(last);
	free(done);
	return ex;
}

static int submit_main(const target *t, int argc, char **argv)
{
	const char *path = NULL;
	int wait = 0, watch = 0, json = t->json, nsets = 0;
	char **sets = calloc((size_t)argc + 1, sizeof(char *));
	char *name_set = NULL;
	if (!sets)
		return EX_NO;
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--wait") == 0)
			wait = 1;
		else if (strcmp(argv[i], "--watch") == 0)
			watch = 1;
		else if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else if (strcmp(argv[i], "--name") == 0 && i + 1 < argc && !name_set) {
			/* the experiment's name: the key [experiment] name */
			size_t len = strlen(argv[++i]) + sizeof("experiment.name=");
			if (!(name_set = malloc(len))) {
				free(sets);
				return EX_NO;
			}
			snprintf(name_set, len, "experiment.name=%s", argv[i]);
			sets[nsets++] = name_set;
		} else if (strcmp(argv[i], "--set") == 0 && i + 1 < argc)
			sets[nsets++] = argv[++i];
		else if (strncmp(argv[i], "--set=", 6) == 0)
			sets[nsets++] = argv[i] + 6;
		else if (!path && argv[i][0] != '-')
			path = argv[i];
		else {
			free(sets);
			free(name_set);
			return cli_bad_usage(&cmd_submit, argv[i]);
		}
	}
	if (!path) {
		free(sets);
		free(name_set);
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
	if (!(text = cli_read_file(path, err))) {
		fprintf(stderr, "byolctl: %s\n", err);
		goto out;
	}
	if ((ex = cli_connect(t, &r)) != EX_OK)
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
	if ((ex = cli_call(r, &e, &rep, BYOL__ENVELOPE__MSG_SUBMIT_REPLY, NULL)) != EX_OK)
		goto out;
	size_t n = rep->submit_reply->n_run_id;
	uint64_t *ids = malloc((n ? n : 1) * sizeof(uint64_t));
	if (!ids) {
		ex = EX_NO;
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		ids[i] = rep->submit_reply->run_id[i];
	if (json) {
		cJSON *o = cJSON_CreateObject(), *a = cJSON_AddArrayToObject(o, "run_ids");
		cJSON_AddNumberToObject(o, "experiment_id", (double)rep->submit_reply->experiment_id);
		for (size_t i = 0; a && i < n; i++)
			cJSON_AddItemToArray(a, cJSON_CreateNumber((double)ids[i]));
		cli_print_json(o);
	} else {
		for (size_t i = 0; i < n; i++)
			printf("%llu\n", (unsigned long long)ids[i]);
	}
	fflush(stdout);
	if (watch) {
		/* the runs of a sweep run one after another: watch each in turn */
		cli_watch_opts o = { .json = json };
		int all_ok = 1;
		for (size_t i = 0; i < n && ex == EX_OK; i++) {
			int x = cli_watch_run(t, &r, ids[i], &o, NULL);
			if (x == EX_NO)
				all_ok = 0;
			else if (x != EX_OK)
				ex = x;
		}
		if (ex == EX_OK && !all_ok)
			ex = EX_NO;
	} else if (wait) {
		ex = wait_runs(t, &r, ids, (int)n);
	}
	free(ids);
out:
	rpc_close(r);
	free(text);
	free(sets);
	free(name_set);
	return ex;
}


const cli_command cmd_submit = {
	"submit", submit_main,
	"submit FILE.ini [--set section.key=value ...] [--name N] [--watch | --wait] [--json]",
	"Check an experiment file here, submit it to byold, print its run ids.",
	"  --set section.key=value  override one key of the file (repeatable)\n"
	"  --name N                 the experiment's name (the same as --set experiment.name=N)\n"
	"  --watch                  follow the runs to their end as `byolctl watch` does;\n"
	"                           exit 0 only if all completed\n"
	"  --wait                   the same, quietly: a line per change of status\n"
	"  --json                   {\"experiment_id\": N, \"run_ids\": [...]} (with --watch:\n"
	"                           then one JSON object per update)\n",
};

const cli_command cmd_status = {
	"status", status_main, "status RUN [--json]",
	"A run's status, step, loss, accuracies and latest checkpoint.",
	"  --json   one JSON object\n",
};

