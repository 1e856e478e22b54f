/*
 * bench_simworker — a simulated worker for bench/cluster.sh: it registers with a
 * byold coordinator like byol-worker, but computes nothing. It answers RunSetup
 * with RunReady at once and every ShardAssign with one NodeResult per node, of
 * the sizes the run's RunSetup gave (param_count floats of gradient, bn_count
 * floats of BN statistics), taken from one fixed buffer (a small finite
 * gradient that it replays every step). So a step served by simulated workers
 * costs only the coordinator's own work and the wire: what cluster.sh's
 * scaling figure measures. Evaluation jobs are answered with an error.
 *
 * It also counts the bytes of the frames it receives and sends (length prefix
 * included, as on the wire above TCP) and prints one line per step to stdout:
 *
 *   step RUN K rx BYTES tx BYTES nodes N
 *
 * rx counts the StepParams and ShardAssign of step K, tx its NodeResults; the
 * rest (registration, RunSetup, RunReady, heartbeats, evaluation jobs) is counted
 * apart and printed at exit ("other rx BYTES tx BYTES").
 *
 * usage: bench_simworker --coordinator HOST:PORT [--name NAME] [--token-file FILE]
 *
 * Ends on SIGTERM or SIGINT, or when the coordinator closes the connection
 * (it does not reconnect).
 */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "byol/auth.h"
#include "byol/conn.h"
#include "byol/error.h"
#include "byol/frame.h"

typedef struct {
	uv_loop_t *loop;
	conn *c;
	uv_signal_t sig_term, sig_int;
	const char *name;
	int status;
	/* the run of the last RunSetup */
	uint64_t run_id;
	size_t P, NB;           /* floats of a gradient, of BN statistics */
	int shard;              /* images per shard */
	float *grad;            /* (P) the replayed gradient */
	float *bn;              /* (NB) */
	/* the step being counted */
	long step;
	uint64_t rx, tx;
	uint64_t other_rx, other_tx;   /* every frame not of a step */
} sim;

static void sim_log(const sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sim_log(const sim *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "bench_simworker %s: ", s->name);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static void conn_log(void *data, const char *line)
{
	sim_log(data, "%s", line);
}

static void send_env(sim *s, Byol__Envelope *e, uint64_t *count)
{
	char err[BYOL_ERR_LEN];
	if (!s->c || !conn_is_open(s->c))
		return;
	*count += frame_size(e);
	if (conn_send(s->c, e, err) < 0)
		sim_log(s, "cannot send %s: %s", frame_msg_name((int)e->msg_case), err);
}

/* The shard size of a canonical config ({"data": {"shard_size": 64}, ...}). */
static int config_shard(const char *json)
{
	cJSON *root = cJSON_Parse(json ? json : "");
	cJSON *data = cJSON_GetObjectItemCaseSensitive(root, "data");
	cJSON *sh = cJSON_GetObjectItemCaseSensitive(data, "shard_size");
	int n = cJSON_IsNumber(sh) ? sh->valueint : 0;
	cJSON_Delete(root);
	return n;
}

static void on_run_setup(sim *s, const Byol__RunSetup *rs)
{
	int shard = config_shard(rs->config_json);
	if (shard <= 0) {
		conn_close(s->c, -EPROTO, "RunSetup of run %llu: no data.shard_size in its config",
			   (unsigned long long)rs->run_id);
		return;
	}
	if (rs->param_count != s->P || rs->bn_count != s->NB || !s->grad) {
		free(s->grad);
		free(s->bn);
		s->grad = malloc((rs->param_count ? rs->param_count : 1) * sizeof(float));
		s->bn = malloc((rs->bn_count ? rs->bn_count : 1) * sizeof(float));
		if (!s->grad || !s->bn) {
			conn_close(s->c, -ENOMEM, "out of memory for %llu parameters",
				   (unsigned long long)rs->param_count);
			return;
		}
		s->P = rs->param_count;
		s->NB = rs->bn_count;
		/* a small, finite, fixed gradient; BN statistics of 1 */
		uint32_t h = 2463534242u;
		for (size_t i = 0; i < s->P; i++) {
			h ^= h << 13;
			h ^= h >> 17;
			h ^= h << 5;
			s->grad[i] = 1e-3f * ((float)(h >> 8) / 16777216.0f - 0.5f);
		}
		for (size_t i = 0; i < s->NB; i++)
			s->bn[i] = 1.0f;
	}
	s->run_id = rs->run_id;
	s->shard = shard;
	s->step = -1;
	Byol__RunReady rr = BYOL__RUN_READY__INIT;
	Byol__Envelope e = BYOL__ENVELOPE__INIT;
	rr.run_id = rs->run_id;
	e.msg_case = BYOL__ENVELOPE__MSG_RUN_READY;
	e.run_ready = &rr;
	send_env(s, &e, &s->other_tx);
	sim_log(s, "run %llu: %zu parameters, %zu BN statistics, shards of %d",
		(unsigned long long)rs->run_id, s->P, s->NB, shard);
}

static void on_step_params(sim *s, const Byol__StepParams *sp, size_t bytes)
{
	if (sp->run_id != s->run_id || sp->online.len != s->P * sizeof(float)) {
		conn_close(s->c, -EPROTO, "StepParams of run %llu with %zu bytes of parameters; "
			   "expected run %llu, %zu bytes", (unsigned long long)sp->run_id,
			   sp->online.len, (unsigned long long)s->run_id, s->P * sizeof(float));
		return;
	}
	s->step = (long)sp->step;
	s->rx = bytes;
	s->tx = 0;
}

static void on_shard_assign(sim *s, const Byol__ShardAssign *sa, size_t bytes)
{
	if (sa->run_id != s->run_id || (long)sa->step != s->step) {
		conn_close(s->c, -EPROTO, "ShardAssign of run %llu step %llu without its StepParams",
			   (unsigned long long)sa->run_id, (unsigned long long)sa->step);
		return;
	}
	s->rx += bytes;
	for (size_t i = 0; i < sa->n_node; i++) {
		uint32_t lo = sa->node[i]->lo, hi = sa->node[i]->hi;
		Byol__NodeResult nr = BYOL__NODE_RESULT__INIT;
		Byol__Envelope e = BYOL__ENVELOPE__INIT;
		for (size_t j = 0; j < s->NB; j++)
			s->bn[j] = (float)(hi - lo);       /* summed over the node's shards */
		nr.run_id = s->run_id;
		nr.step = sa->step;
		nr.lo = lo;
		nr.hi = hi;
		nr.grad.data = (uint8_t *)s->grad;
		nr.grad.len = s->P * sizeof(float);
		nr.bn_stats.data = (uint8_t *)s->bn;
		nr.bn_stats.len = s->NB * sizeof(float);
		nr.n = (hi - lo) * (uint32_t)s->shard;
		nr.loss = (double)nr.n;
		nr.collapse = (double)(hi - lo);
		e.msg_case = BYOL__ENVELOPE__MSG_NODE_RESULT;
		e.node_result = &nr;
		send_env(s, &e, &s->tx);
	}
	printf("step %llu %ld rx %llu tx %llu nodes %zu\n", (unsigned long long)s->run_id,
	       s->step, (unsigned long long)s->rx, (unsigned long long)s->tx, sa->n_node);
}

static void on_eval_job(sim *s, const Byol__EvalJob *ej)
{
	Byol__EvalResult er = BYOL__EVAL_RESULT__INIT;
	Byol__Envelope e = BYOL__ENVELOPE__INIT;
	er.job_id = ej->job_id;
	er.run_id = ej->run_id;
	er.step = ej->step;
	er.kind = ej->kind;
	er.error = "a simulated worker does not evaluate";
	e.msg_case = BYOL__ENVELOPE__MSG_EVAL_RESULT;
	e.eval_result = &er;
	send_env(s, &e, &s->other_tx);
}

static void on_message(conn *c, Byol__Envelope *e)
{
	sim *s = conn_owner(c);
	size_t bytes = frame_size(e);
	switch (e->msg_case) {
	case BYOL__ENVELOPE__MSG_HEARTBEAT: {
		/* answered, so that the coordinator never finds this worker silent */
		s->other_rx += bytes;
		Byol__Heartbeat hb = BYOL__HEARTBEAT__INIT;
		Byol__Envelope r = BYOL__ENVELOPE__INIT;
		hb.seq = e->heartbeat->seq;
		hb.unix_ms = e->heartbeat->unix_ms;
		r.msg_case = BYOL__ENVELOPE__MSG_HEARTBEAT;
		r.heartbeat = &hb;
		send_env(s, &r, &s->other_tx);
		return;
	}
	case BYOL__ENVELOPE__MSG_RUN_SETUP:
		s->other_rx += bytes;
		on_run_setup(s, e->run_setup);
		return;
	case BYOL__ENVELOPE__MSG_STEP_PARAMS: on_step_params(s, e->step_params, bytes); return;
	case BYOL__ENVELOPE__MSG_SHARD_ASSIGN: on_shard_assign(s, e->shard_assign, bytes); return;
	case BYOL__ENVELOPE__MSG_EVAL_JOB:
		s->other_rx += bytes;
		on_eval_job(s, e->eval_job);
		return;
	case BYOL__ENVELOPE__MSG_ERROR:
		sim_log(s, "the coordinator says: %s (%d)", e->error->message, e->error->code);
		return;
	default:
		conn_close(c, -EPROTO, "unexpected %s", frame_msg_name((int)e->msg_case));
	}
}

static void stop(sim *s)
{
	if (!uv_is_closing((uv_handle_t *)&s->sig_term)) {
		uv_close((uv_handle_t *)&s->sig_term, NULL);
		uv_close((uv_handle_t *)&s->sig_int, NULL);
	}
}

static void on_close(conn *c, int code, const char *reason)
{
	sim *s = conn_owner(c);
	if (code)
		sim_log(s, "disconnected: %s", reason);
	s->c = NULL;
	stop(s);
}

static void on_connect(conn *c, int status, const char *reason)
{
	sim *s = conn_owner(c);
	if (status < 0) {
		sim_log(s, "cannot connect: %s", reason);
		s->c = NULL;
		s->status = 1;
		stop(s);
		return;
	}
	s->c = c;
	Byol__WorkerRegister reg = BYOL__WORKER_REGISTER__INIT;
	Byol__Envelope e = BYOL__ENVELOPE__INIT;
	reg.name = (char *)s->name;
	reg.threads = 1;
	reg.version = "bench_simworker";
	reg.host = "simulated";
	e.msg_case = BYOL__ENVELOPE__MSG_WORKER_REGISTER;
	e.worker_register = &reg;
	send_env(s, &e, &s->other_tx);
}

static void on_signal(uv_signal_t *h, int signum)
{
	sim *s = h->data;
	(void)signum;
	if (s->c)
		conn_close(s->c, 0, NULL);
	else
		stop(s);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"coordinator", 1, 0, 'c'}, {"name", 1, 0, 'n'},
					     {"token-file", 1, 0, 't'}, {0, 0, 0, 0}};
	const char *addr = NULL, *token_file = NULL;
	static sim s;
	s.name = "sim";
	int ch;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch == 'c') addr = optarg;
		else if (ch == 'n') s.name = optarg;
		else if (ch == 't') token_file = optarg;
		else return 2;
	}
	if (!addr || optind != argc) {
		fprintf(stderr, "usage: bench_simworker --coordinator HOST:PORT [--name NAME] "
				"[--token-file FILE]\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	char err[BYOL_ERR_LEN];
	char *token = NULL;
	if (auth_init(err) < 0 ||
	    (token_file && auth_token_load(token_file, &token, NULL, err) < 0)) {
		sim_log(&s, "%s", err);
		return 1;
	}
	s.loop = uv_default_loop();
	uv_signal_init(s.loop, &s.sig_term);
	uv_signal_init(s.loop, &s.sig_int);
	s.sig_term.data = s.sig_int.data = &s;
	uv_signal_start(&s.sig_term, on_signal, SIGTERM);
	uv_signal_start(&s.sig_int, on_signal, SIGINT);
	conn_config cfg = {
		.token = token,
		.role = AUTH_ROLE_WORKER,
		.name = s.name,
		.version = "bench_simworker",
		.data = &s,
		.on_message = on_message,
		.on_close = on_close,
		.log = conn_log,
	};
	if (conn_connect_tcp(s.loop, addr, &cfg, on_connect, &s.c, err) < 0) {
		sim_log(&s, "%s", err);
		return 1;
	}
	uv_run(s.loop, UV_RUN_DEFAULT);
	printf("other rx %llu tx %llu\n", (unsigned long long)s.other_rx,
	       (unsigned long long)s.other_tx);
	uv_loop_close(s.loop);
	free(s.grad);
	free(s.bn);
	auth_token_free(token);
	return s.status;
}
