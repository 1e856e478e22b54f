/*
 * cmd_show.c — byolctl show, cancel, resume and workers: one request each,
 * answered by byold's control.c (ShowReply, RunStatus, StatusReply). `cancel`
 * of the active run waits (through a watch) until the run has stopped at its
 * step boundary; `resume --watch` follows the run like `watch`.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "cli.h"

/* "2026-11-28 03:30:01" (local time), or "-" for 0. */
static void fmt_time(char *out, size_t n, int64_t unix_ms)
{
	if (unix_ms <= 0) {
		snprintf(out, n, "-");
		return;
	}
	time_t t = (time_t)(unix_ms / 1000);
	struct tm tm;
	if (!localtime_r(&t, &tm) || !strftime(out, n, "%Y-%m-%d %H:%M:%S", &tm))
		snprintf(out, n, "%lld", (long long)unix_ms);
}

static void fmt_bytes(char *out, size_t n, uint64_t b)
{
	if (b >= (1u << 20))
		snprintf(out, n, "%.1f MiB", (double)b / (1 << 20));
	else if (b >= 1024)
		snprintf(out, n, "%.1f KiB", (double)b / 1024);
	else
		snprintf(out, n, "%llu B", (unsigned long long)b);
}

/* Parses "RUN [--json]" (plus --watch when watch is not NULL). EX_OK or EX_USAGE. */
static int parse_run_args(const cli_command *c, const target *t, int argc, char **argv,
			  uint64_t *id, int *json, int *watch)
{
	const char *run = NULL;
	*json = t->json;
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			*json = 1;
		else if (watch && strcmp(argv[i], "--watch") == 0)
			*watch = 1;
		else if (!run && argv[i][0] != '-')
			run = argv[i];
		else
			return cli_bad_usage(c, argv[i]);
	}
	if (!run || cli_parse_id(run, id) < 0) {
		fprintf(stderr, "byolctl %s: expected a run id (a positive integer), got '%s'\n",
			c->name, run ? run : "");
		return EX_USAGE;
	}
	return EX_OK;
}

/* ---- show ---- */

static cJSON *parse_or_null(const char *json)
{
	cJSON *o = json && json[0] ? cJSON_Parse(json) : NULL;
	return o ? o : cJSON_CreateNull();
}

static int show_json(const Byol__ShowReply *sr)
{
	cJSON *o = cJSON_CreateObject();
	cJSON *run = cli_status_json(sr->run);
	if (!o || !run) {
		cJSON_Delete(o);
		cJSON_Delete(run);
		return cli_print_json(NULL);
	}
	cJSON_AddItemToObject(o, "run", run);
	cJSON_AddItemToObject(o, "config", parse_or_null(sr->run->config_json));
	cJSON_AddItemToObject(o, "final", parse_or_null(sr->run->final_json));
	cJSON *a = cJSON_AddArrayToObject(o, "checkpoints");
	for (size_t i = 0; a && i < sr->n_checkpoints; i++) {
		const Byol__CheckpointInfo *c = sr->checkpoints[i];
		cJSON *x = cJSON_CreateObject();
		cJSON_AddNumberToObject(x, "step", (double)c->step);
		cJSON_AddStringToObject(x, "path", c->path);
		cJSON_AddStringToObject(x, "sha256", c->sha256);
		cJSON_AddNumberToObject(x, "bytes", (double)c->bytes);
		cJSON_AddNumberToObject(x, "created_unix_ms", (double)c->created_unix_ms);
		cJSON_AddItemToArray(a, x);
	}
	a = cJSON_AddArrayToObject(o, "workers");
	for (size_t i = 0; a && i < sr->n_workers; i++) {
		const Byol__RunWorkerInfo *w = sr->workers[i];
		cJSON *x = cJSON_CreateObject();
		cJSON_AddStringToObject(x, "name", w->name);
		cJSON_AddNumberToObject(x, "shards", (double)w->shards);
		cJSON_AddNumberToObject(x, "first_unix_ms", (double)w->first_unix_ms);
		cJSON_AddNumberToObject(x, "last_unix_ms", (double)w->last_unix_ms);
		cJSON_AddItemToArray(a, x);
	}
	a = cJSON_AddArrayToObject(o, "evals");
	for (size_t i = 0; a && i < sr->n_evals; i++) {
		cJSON *x = cJSON_CreateObject();
		cJSON_AddNumberToObject(x, "step", (double)sr->evals[i]->step);
		cJSON_AddStringToObject(x, "kind", sr->evals[i]->kind);
		cJSON_AddNumberToObject(x, "value", sr->evals[i]->value);
		cJSON_AddItemToArray(a, x);
	}
	a = cJSON_AddArrayToObject(o, "events");
	for (size_t i = 0; a && i < sr->n_events; i++) {
		cJSON *x = cJSON_CreateObject();
		cJSON_AddNumberToObject(x, "unix_ms", (double)sr->events[i]->unix_ms);
		cJSON_AddStringToObject(x, "level", sr->events[i]->level);
		cJSON_AddStringToObject(x, "message", sr->events[i]->message);
		cJSON_AddItemToArray(a, x);
	}
	return cli_print_json(o);
}

/* The config as "section.key = value" lines, lists joined with ", ". */
static void print_config(const char *json)
{
	cJSON *o = json && json[0] ? cJSON_Parse(json) : NULL;
	const char *label = "config";
	for (const cJSON *sec = o ? o->child : NULL; sec; sec = sec->next) {
		for (const cJSON *k = sec->child; k; k = k->next) {
			char *v = NULL;
			if (cJSON_IsString(k))
				v = strdup(k->valuestring);
			else if (cJSON_IsArray(k)) {
				char buf[512] = "";
				size_t len = 0;
				for (const cJSON *e = k->child; e && len < sizeof(buf) - 32; e = e->next)
					len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s%g",
								len ? ", " : "", e->valuedouble);
				v = strdup(buf);
			} else {
				v = cJSON_PrintUnformatted(k);
			}
			printf("%-12s %s.%s = %s\n", label, sec->string, k->string, v ? v : "?");
			label = "";
			free(v);
		}
	}
	cJSON_Delete(o);
}

static void show_human(const Byol__ShowReply *sr)
{
	const Byol__RunStatus *s = sr->run;
	char a[64], b[64], c[64];
	printf("run %llu (%s), experiment %llu (%s)\n", (unsigned long long)s->run_id, s->name,
	       (unsigned long long)s->experiment_id, s->experiment);
	int say = s->message && s->message[0] && strcmp(s->message, s->status) != 0;
	printf("%-12s %s%s%s\n", "status", s->status, say ? ": " : "", say ? s->message : "");
	printf("%-12s %llu\n", "seed", (unsigned long long)s->seed);
	fmt_time(a, sizeof(a), s->created_unix_ms);
	fmt_time(b, sizeof(b), s->started_unix_ms);
	fmt_time(c, sizeof(c), s->finished_unix_ms);
	printf("%-12s created %s, started %s, finished %s", "times", a, b, c);
	if (s->started_unix_ms > 0 && s->finished_unix_ms >= s->started_unix_ms)
		printf(" (%.1f s)", (double)(s->finished_unix_ms - s->started_unix_ms) / 1000);
	printf("\n%-12s step %llu/%llu, epoch %llu", "progress", (unsigned long long)s->step,
	       (unsigned long long)s->total_steps, (unsigned long long)s->epoch);
	if (s->eta_s > 0 && strcmp(s->status, "running") == 0)
		printf(", about %.0f s to go", s->eta_s);
	printf("\n");
	if (s->step > 0)
		printf("%-12s loss %.4f, collapse %.3f, lr %.4g, %.0f img/s\n", "metrics", s->loss,
		       s->collapse, s->lr, s->img_per_s);
	cJSON *fin = s->final_json ? cJSON_Parse(s->final_json) : NULL;
	if (fin && fin->child) {
		printf("%-12s", "final");
		for (const cJSON *k = fin->child; k; k = k->next) {
			if (cJSON_IsNumber(k))
				printf(" %s %.4g", k->string, k->valuedouble);
			else if (cJSON_IsNull(k))
				printf(" %s -", k->string);
		}
		printf("\n");
	}
	cJSON_Delete(fin);
	for (size_t i = 0; i < sr->n_checkpoints; i++) {
		const Byol__CheckpointInfo *k = sr->checkpoints[i];
		fmt_bytes(a, sizeof(a), k->bytes);
		printf("%-12s step %llu, %s, sha256 %.12s, %s\n", i ? "" : "checkpoints",
		       (unsigned long long)k->step, a, k->sha256, k->path);
	}
	for (size_t i = 0; i < sr->n_workers; i++) {
		const Byol__RunWorkerInfo *w = sr->workers[i];
		fmt_time(a, sizeof(a), w->first_unix_ms);
		fmt_time(b, sizeof(b), w->last_unix_ms);
		printf("%-12s %s: %llu shards, %s .. %s\n", i ? "" : "workers", w->name,
		       (unsigned long long)w->shards, a, b);
	}
	for (size_t i = 0; i < sr->n_evals; i++)
		printf("%-12s step %llu %s %.4f\n", i ? "" : "evaluations",
		       (unsigned long long)sr->evals[i]->step, sr->evals[i]->kind,
		       sr->evals[i]->value);
	for (size_t i = 0; i < sr->n_events; i++) {
		fmt_time(a, sizeof(a), sr->events[i]->unix_ms);
		printf("%-12s %s %-5s %s\n", i ? "" : "events", a, sr->events[i]->level,
		       sr->events[i]->message);
	}
	print_config(s->config_json);
}

static int show_main(const target *t, int argc, char **argv)
{
	uint64_t id;
	int json;
	int ex = parse_run_args(&cmd_show, t, argc, argv, &id, &json, NULL);
	if (ex != EX_OK)
		return ex;
	rpc *r;
	if ((ex = cli_connect(t, &r)) != EX_OK)
		return ex;
	Byol__ShowRequest q = BYOL__SHOW_REQUEST__INIT;
	Byol__Envelope e = BYOL__ENVELOPE__INIT, *rep;
	q.run_id = id;
	e.msg_case = BYOL__ENVELOPE__MSG_SHOW_REQUEST;
	e.show_request = &q;
	ex = cli_call(r, &e, &rep, BYOL__ENVELOPE__MSG_SHOW_REPLY, NULL);
	if (ex == EX_OK && !rep->show_reply->run) {
		fprintf(stderr, "byolctl: byold answered show %llu without the run\n",
			(unsigned long long)id);
		ex = EX_NO;
	}
	if (ex == EX_OK) {
		if (json)
			ex = show_json(rep->show_reply);
		else
			show_human(rep->show_reply);
	}
	rpc_close(r);
	return ex;
}

/* ---- cancel / resume ---- */

/* Sends e (CancelRequest or ResumeRequest) and expects a RunStatus for id. */
static int call_status(rpc *r, Byol__Envelope *e, uint64_t id, const Byol__RunStatus **st)
{
	Byol__Envelope *rep;
	int ex = cli_call(r, e, &rep, BYOL__ENVELOPE__MSG_RUN_STATUS, NULL);
	if (ex != EX_OK)
		return ex;
	if (rep->run_status->run_id != id) {
		fprintf(stderr, "byolctl: byold answered with the status of run %llu, not %llu\n",
			(unsigned long long)rep->run_status->run_id, (unsigned long long)id);
		return EX_NO;
	}
	*st = rep->run_status;
	return EX_OK;
}

static int cancel_main(const target *t, int argc, char **argv)
{
	uint64_t id;
	int json;
	int ex = parse_run_args(&cmd_cancel, t, argc, argv, &id, &json, NULL);
	if (ex != EX_OK)
		return ex;
	rpc *r;
	if ((ex = cli_connect(t, &r)) != EX_OK)
		return ex;
	Byol__CancelRequest q = BYOL__CANCEL_REQUEST__INIT;
	Byol__Envelope e = BYOL__ENVELOPE__INIT;
	const Byol__RunStatus *st = NULL;
	q.run_id = id;
	e.msg_case = BYOL__ENVELOPE__MSG_CANCEL_REQUEST;
	e.cancel_request = &q;
	if ((ex = call_status(r, &e, id, &st)) != EX_OK)
		goto out;
	int ok;
	if (!cli_status_is_final(st->status, &ok)) {
		/* the active run: it stops at its step boundary */
		if (!json)
			fprintf(stderr, "byolctl: run %llu stops at its next step boundary...\n",
				(unsigned long long)id);
		cli_watch_opts o = { .quiet = 1 };
		ex = cli_watch_run(t, &r, id, &o, &st);
		if (!st)
			goto out;
	}
	if (json) {
		cli_print_json(cli_status_json(st));
	} else if (strcmp(st->status, "cancelled") == 0) {
		printf("run %llu cancelled at step %llu/%llu", (unsigned long long)id,
		       (unsigned long long)st->step, (unsigned long long)st->total_steps);
		if (st->checkpoint && st->checkpoint[0])
			printf("; checkpoint at step %llu: %s", (unsigned long long)st->checkpoint_step,
			       st->checkpoint);
		printf("\n");
	}
	if (strcmp(st->status, "cancelled") == 0) {
		ex = EX_OK;
	} else {
		fprintf(stderr, "byolctl: run %llu ended %s before it could be cancelled\n",
			(unsigned long long)id, st->status);
		ex = EX_NO;
	}
out:
	rpc_close(r);
	return ex;
}

static int resume_main(const target *t, int argc, char **argv)
{
	uint64_t id;
	int json, watch = 0;
	int ex = parse_run_args(&cmd_resume, t, argc, argv, &id, &json, &watch);
	if (ex != EX_OK)
		return ex;
	rpc *r;
	if ((ex = cli_connect(t, &r)) != EX_OK)
		return ex;
	Byol__ResumeRequest q = BYOL__RESUME_REQUEST__INIT;
	Byol__Envelope e = BYOL__ENVELOPE__INIT;
	const Byol__RunStatus *st = NULL;
	q.run_id = id;
	e.msg_case = BYOL__ENVELOPE__MSG_RESUME_REQUEST;
	e.resume_request = &q;
	if ((ex = call_status(r, &e, id, &st)) != EX_OK)
		goto out;
	if (json)
		cli_print_json(cli_status_json(st));
	else if (st->checkpoint && st->checkpoint[0])
		printf("run %llu %s: continues from step %llu (%s)\n", (unsigned long long)id,
		       st->status, (unsigned long long)st->checkpoint_step, st->checkpoint);
	else
		printf("run %llu %s: no checkpoint, starts from step 0\n", (unsigned long long)id,
		       st->status);
	fflush(stdout);
	if (watch) {
		cli_watch_opts o = { .json = json };
		ex = cli_watch_run(t, &r, id, &o, NULL);
	}
out:
	rpc_close(r);
	return ex;
}

/* ---- workers ---- */

static int workers_main(const target *t, int argc, char **argv)
{
	int json = t->json;
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else
			return cli_bad_usage(&cmd_workers, argv[i]);
	}
	rpc *r;
	int ex = cli_connect(t, &r);
	if (ex != EX_OK)
		return ex;
	Byol__WorkersRequest q = BYOL__WORKERS_REQUEST__INIT;
	Byol__Envelope e = BYOL__ENVELOPE__INIT, *rep;
	e.msg_case = BYOL__ENVELOPE__MSG_WORKERS_REQUEST;
	e.workers_request = &q;
	if ((ex = cli_call(r, &e, &rep, BYOL__ENVELOPE__MSG_STATUS_REPLY, NULL)) != EX_OK)
		goto out;
	const Byol__StatusReply *sr = rep->status_reply;
	int64_t now = (int64_t)time(NULL) * 1000;
	if (json) {
		cJSON *o = cJSON_CreateObject();
		cJSON *a = cJSON_AddArrayToObject(o, "workers");
		for (size_t i = 0; a && i < sr->n_workers; i++) {
			const Byol__WorkerStatus *w = sr->workers[i];
			cJSON *x = cJSON_CreateObject();
			cJSON_AddStringToObject(x, "name", w->name);
			cJSON_AddStringToObject(x, "host", w->host);
			cJSON_AddStringToObject(x, "peer", w->peer);
			cJSON_AddNumberToObject(x, "threads", w->threads);
			cJSON_AddStringToObject(x, "state", w->state);
			if (w->run_id)
				cJSON_AddNumberToObject(x, "run_id", (double)w->run_id);
			else
				cJSON_AddNullToObject(x, "run_id");
			cJSON_AddNumberToObject(x, "shards_done", (double)w->shards_done);
			cJSON_AddNumberToObject(x, "img_per_s", isfinite(w->img_per_s) ? w->img_per_s : 0);
			cJSON_AddNumberToObject(x, "last_heard_unix_ms", (double)w->last_heard_unix_ms);
			cJSON_AddItemToArray(a, x);
		}
		cJSON_AddStringToObject(o, "version", sr->version ? sr->version : "");
		cJSON_AddNumberToObject(o, "uptime_s", (double)sr->uptime_s);
		ex = cli_print_json(o);
		goto out;
	}
	if (!sr->n_workers) {
		printf("no worker is connected to byold at %s\n", rpc_address(r));
		goto out;
	}
	printf("%-16s %-16s %7s %-10s %5s %8s %7s %s\n", "NAME", "HOST", "THREADS", "STATE", "RUN",
	       "SHARDS", "IMG/S", "LAST HEARD");
	for (size_t i = 0; i < sr->n_workers; i++) {
		const Byol__WorkerStatus *w = sr->workers[i];
		char run[24] = "-", heard[32];
		if (w->run_id)
			snprintf(run, sizeof(run), "%llu", (unsigned long long)w->run_id);
		double ago = (double)(now - w->last_heard_unix_ms) / 1000;
		snprintf(heard, sizeof(heard), "%.1f s ago", ago > 0 ? ago : 0);
		printf("%-16s %-16s %7u %-10s %5s %8llu %7.0f %s\n", w->name, w->host, w->threads,
		       w->state, run, (unsigned long long)w->shards_done, w->img_per_s, heard);
	}
out:
	rpc_close(r);
	return ex;
}

const cli_command cmd_show = {
	"show", show_main, "show RUN [--json]",
	"A run in full: config, status, times, last step, checkpoints, workers, events.",
	"  --json   one JSON object: run, config, final, checkpoints, workers, evals,\n"
	"           events\n",
};

const cli_command cmd_cancel = {
	"cancel", cancel_main, "cancel RUN [--json]",
	"Cancel a queued run, or stop the running one at its next step boundary.",
	"A running run stops at the boundary of the step in progress with a\n"
	"checkpoint of it; the command returns once it has stopped, and byold starts\n"
	"the next queued run. `byolctl resume RUN` continues it later. If byold stops\n"
	"before that boundary, the run is cancelled at its latest checkpoint when\n"
	"byold starts again.\n"
	"Exit status 0 when the run is cancelled; 1 when it had ended already.\n"
	"\n"
	"  --json   the run's final status as one JSON object\n",
};

const cli_command cmd_resume = {
	"resume", resume_main, "resume RUN [--watch] [--json]",
	"Queue an interrupted, cancelled or failed run again, from its checkpoint.",
	"The run continues from its latest checkpoint (from step 0 when it has none)\n"
	"once the runs queued before it have ended.\n"
	"\n"
	"  --watch  follow it to its end, as `byolctl watch` does\n"
	"  --json   its status as one JSON object (with --watch: one per update)\n",
};

const cli_command cmd_workers = {
	"workers", workers_main, "workers [--json]",
	"The connected workers: host, threads, run, shards done, img/s, last heard.",
	"  --json   one JSON object with a \"workers\" array\n",
};
