/*
 * run.c — the run a networked worker serves (worker/run.h).
 */
#include "run.h"

#include <cblas.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "byol/conn.h"
#include "byol/optim.h"
#include "byol/train.h"

void worker_log(const char *fmt, ...)
{
	char line[BYOL_ERR_LEN + 256];
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	size_t n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
	n += (size_t)snprintf(line + n, sizeof(line) - n, ".%03ldZ byol-worker[%d]: ",
			      ts.tv_nsec / 1000000, (int)getpid());
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	va_end(ap);
	n = strlen(line);
	line[n++] = '\n';
	if (fwrite(line, 1, n, stderr) != n)
		return;
}

void run_free(run_state *rs)
{
	if (!rs)
		return;
	if (rs->leaves)
		for (int j = 0; j < rs->plan.shards; j++)
			shard_result_free(&rs->leaves[j]);
	free(rs->leaves);
	free(rs->shards);
	shard_runner_free(rs->runner);
	conn_tensor_free(rs->online);
	free(rs->target);
	model_free(&rs->m);
	dataset_free(&rs->train);
	dataset_free(&rs->test);
	free(rs->config_json);
	free(rs);
}

int run_check_counts(const run_state *rs, const run_setup_args *a, char *err)
{
	const struct {
		const char *what;
		uint64_t theirs, ours;
	} c[] = {
		{"param_count", a->param_count, rs->P},
		{"target_count", a->target_count, rs->NT},
		{"bn_count", a->bn_count, rs->NB},
		{"n_train", a->n_train, (uint64_t)rs->plan.n_train},
		{"total_steps", a->total_steps, (uint64_t)rs->plan.total_steps},
	};
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++)
		if (c[i].theirs != c[i].ours)
			return byol_err(err, -EINVAL, "run %llu: the coordinator says %s = %llu, "
						      "this worker computes %llu",
					(unsigned long long)a->run_id, c[i].what,
					(unsigned long long)c[i].theirs,
					(unsigned long long)c[i].ours);
	return 0;
}

static int build(run_state *rs, const run_setup_args *a, int threads, char *err)
{
	char e[BYOL_ERR_LEN];
	int r;
	rs->run_id = a->run_id;
	rs->threads = threads;
	rs->online_step = rs->target_step = -1;
	if (!(rs->config_json = strdup(a->config_json ? a->config_json : "")))
		return byol_err(err, -ENOMEM, "run %llu: out of memory",
				(unsigned long long)a->run_id);
	if ((r = config_from_json(&rs->cfg, rs->config_json, e)) < 0 ||
	    (r = config_validate(&rs->cfg, e)) < 0 ||
	    (r = dataset_load_dir(&rs->train, &rs->test, rs->cfg.data_dir, rs->cfg.train_limit,
				  e)) < 0 ||
	    (r = model_build(&rs->m, &rs->cfg, rs->train.h, rs->train.w, rs->train.c, e)) < 0 ||
	    (r = step_plan_make(&rs->plan, &rs->cfg, rs->train.n, e)) < 0)
		return byol_err(err, r, "run %llu: %s", (unsigned long long)a->run_id, e);
	rs->P = rs->m.L.total;
	rs->NT = rs->cfg.method == METHOD_BYOL ? rs->m.n_target : 0;
	rs->NB = rs->m.bn_layout.total;
	if ((r = run_check_counts(rs, a, err)) < 0)
		return r;
	int S = rs->plan.shards;
	rs->target = rs->NT ? malloc(rs->NT * sizeof(float)) : NULL;
	rs->shards = calloc((size_t)S, sizeof(int));
	rs->leaves = calloc((size_t)S, sizeof(shard_result));
	rs->runner = shard_runner_new(&rs->m, &rs->plan, threads);
	if ((rs->NT && !rs->target) || !rs->shards || !rs->leaves || !rs->runner)
		return byol_err(err, -ENOMEM, "run %llu: out of memory",
				(unsigned long long)a->run_id);
	for (int j = 0; j < S; j++)
		if (shard_result_alloc(&rs->leaves[j], &rs->m) < 0)
			return byol_err(err, -ENOMEM, "run %llu: out of memory for shard results",
					(unsigned long long)a->run_id);
	return 0;
}

int run_build(run_state **out, const run_setup_args *a, int threads, char *err)
{
	*out = NULL;
	run_state *rs = calloc(1, sizeof(*rs));
	if (!rs)
		return byol_err(err, -ENOMEM, "run %llu: out of memory",
				(unsigned long long)a->run_id);
	int r = build(rs, a, threads, err);
	if (r < 0) {
		run_free(rs);
		return r;
	}
	*out = rs;
	return 0;
}

static int check_params(run_state *rs, uint64_t step, size_t online_len, size_t target_len,
			int *ema, char *err)
{
	unsigned long long k = (unsigned long long)step;
	if (step > (uint64_t)rs->plan.total_steps)
		return byol_err(err, -EPROTO, "step_params for step %llu of a %ld-step run", k,
				rs->plan.total_steps);
	if (online_len != rs->P * sizeof(float))
		return byol_err(err, -EPROTO, "step_params %llu: online of %zu bytes, expected "
					      "%zu (%zu floats)", k, online_len,
				rs->P * sizeof(float), rs->P);
	if (target_len && target_len != rs->NT * sizeof(float))
		return byol_err(err, -EPROTO, "step_params %llu: target of %zu bytes, expected "
					      "%zu (%zu floats)", k, target_len,
				rs->NT * sizeof(float), rs->NT);
	long s = (long)step;
	*ema = 0;
	if (rs->NT && !target_len) {
		if (rs->target_step >= 0 && rs->target_step + 1 == s)
			*ema = 1;
		else if (!(rs->target_step == s && rs->online_step == s)) /* not a repeat */
			return byol_err(err, -EPROTO, "step_params %llu without a target, but this "
						      "worker's target replica is at step %ld", k,
					rs->target_step);
	}
	return 0;
}

int run_apply_params(run_state *rs, uint64_t step, float *online, size_t online_len,
		     const void *target, size_t target_len, char *err)
{
	int ema;
	int rc = check_params(rs, step, online_len, target_len, &ema, err);
	if (rc < 0) {
		conn_tensor_free(online);
		return rc;
	}
	long s = (long)step;
	conn_tensor_free(rs->online);
	rs->online = online;
	if (target_len) {
		memcpy(rs->target, target, target_len);
		rs->target_step = s;
	} else if (ema) {
		ema_update(rs->target, rs->online, (long)rs->NT,
			   ema_tau_at(rs->cfg.tau_base, s - 1, rs->plan.total_steps));
		rs->target_step = s;
	}
	rs->online_step = s;
	return 0;
}

int run_check_nodes(const run_state *rs, uint64_t step, const uint32_t *lo,
		    const uint32_t *hi, int n, char *err)
{
	unsigned long long k = (unsigned long long)step;
	int S = rs->plan.shards;
	if (rs->online_step < 0 || step != (uint64_t)rs->online_step ||
	    (rs->NT && rs->target_step != rs->online_step))
		return byol_err(err, -EPROTO, "shard_assign for step %llu, but this worker has "
					      "the parameters of step %ld", k, rs->online_step);
	if (step >= (uint64_t)rs->plan.total_steps)
		return byol_err(err, -EPROTO, "shard_assign for step %llu of a %ld-step run", k,
				rs->plan.total_steps);
	if (n > S)
		return byol_err(err, -EPROTO, "shard_assign %llu: %d nodes for %d shards", k, n, S);
	for (int i = 0; i < n; i++) {
		int bad = lo[i] >= (uint32_t)S || hi[i] > (uint32_t)S ||
			  !step_tree_is_node(S, (int)lo[i], (int)hi[i]);
		for (int j = 0; !bad && j < i; j++)
			bad = lo[i] < hi[j] && lo[j] < hi[i];
		if (bad)
			return byol_err(err, -EPROTO, "shard_assign %llu: [%u, %u) is not a node of "
						      "the %d-shard tree apart from the others",
					k, lo[i], hi[i], S);
	}
	return 0;
}

void run_compute_nodes(run_state *rs, long step, const int *lo, const int *hi, int n,
		       int *off)
{
	int total = 0;
	for (int i = 0; i < n; i++) {
		off[i] = total;
		for (int s = lo[i]; s < hi[i]; s++)
			rs->shards[total++] = s;
	}
	shard_runner_run(rs->runner, &rs->train, rs->online, rs->target, step, rs->shards,
			 total, rs->leaves);
	/* a node's tree has the shape of its length alone, so the compacted leaves
	 * reduce as [0, len) to the bytes of [lo, hi) */
	for (int i = 0; i < n; i++)
		step_reduce_node(&rs->m, rs->leaves + off[i], 0, hi[i] - lo[i]);
}

int run_evaluate(run_state *rs, const char *kind, const float *online, const float *bn,
		 int threads, double *acc, char *err)
{
	train_state st;
	eval_report ev;
	int knn = strcmp(kind, "knn") == 0;
	if (!knn && strcmp(kind, "probe") != 0)
		return byol_err(err, -EINVAL, "unknown evaluation kind '%.32s' (knn or probe)",
				kind);
	memset(&st, 0, sizeof(st));
	st.online = (float *)online;
	st.bn_running = (float *)bn;
	openblas_set_num_threads(threads > 0 ? threads : 1);
	int r = train_evaluate(&rs->m, &st, &rs->train, &rs->test, knn, !knn, &ev, err);
	if (r < 0)
		return r;
	*acc = knn ? ev.knn_acc : ev.probe_acc;
	return 0;
}
