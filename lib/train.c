/*
 * train.c — a run in one process: the step loop, periodic kNN, the final probe.
 */
#include "byol/train.h"

#include <cblas.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "byol/augment.h"
#include "byol/checkpoint.h"
#include "byol/error.h"
#include "byol/eval.h"
#include "byol/runner.h"
#include "byol/safetensors.h"

#define FEATURE_BATCH 256

static double now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int train_features(const model *m, const float *online, const float *bn_running,
		   const dataset *d, float *out)
{
	model_pass *p = model_pass_new(m, FEATURE_BATCH, 0);
	float *x = malloc((size_t)FEATURE_BATCH * (size_t)m->in_dim * sizeof(float));
	if (!p || !x) {
		model_pass_free(p);
		free(x);
		return -ENOMEM;
	}
	size_t D = (size_t)m->in_dim, R = (size_t)m->rep_dim;
	for (int start = 0; start < d->n; start += FEATURE_BATCH) {
		int n = d->n - start < FEATURE_BATCH ? d->n - start : FEATURE_BATCH;
		for (int i = 0; i < n; i++)
			augment_plain(x + (size_t)i * D, d->pixels + (size_t)(start + i) * D, d->h,
				      d->w, d->c, d->mean, d->std);
		const float *y = model_forward(m, p, online, bn_running, x, n, m->enc_end, 0);
		memcpy(out + (size_t)start * R, y, (size_t)n * R * sizeof(float));
	}
	model_pass_free(p);
	free(x);
	return 0;
}

int train_evaluate(const model *m, const train_state *st, const dataset *train,
		   const dataset *test, int do_knn, int do_probe, eval_report *out, char *err)
{
	out->knn_acc = out->probe_acc = -1;
	if (!do_knn && !do_probe)
		return 0;
	size_t R = (size_t)m->rep_dim;
	float *ftr = malloc((size_t)train->n * R * sizeof(float));
	float *fte = malloc((size_t)test->n * R * sizeof(float));
	int r = -ENOMEM;
	if (!ftr || !fte || train_features(m, st->online, st->bn_running, train, ftr) < 0 ||
	    train_features(m, st->online, st->bn_running, test, fte) < 0) {
		byol_err(err, r, "out of memory for evaluation features");
		goto out;
	}
	int K = train->n_classes > test->n_classes ? train->n_classes : test->n_classes;
	if (do_knn && (r = eval_knn(&out->knn_acc, ftr, train->labels, train->n, fte,
				    test->labels, test->n, (int)R, K, m->cfg.knn_k, 0.1f, err)) < 0)
		goto out;
	if (do_probe) {
		probe_config pc = probe_defaults();
		pc.epochs = m->cfg.probe_epochs;
		pc.seed = m->cfg.seed;
		if ((r = eval_probe(&out->probe_acc, ftr, train->labels, train->n, fte, test->labels,
				    test->n, (int)R, K, &pc, err)) < 0)
			goto out;
	}
	r = 0;
out:
	free(ftr);
	free(fte);
	return r;
}

typedef struct {
	double loss, collapse;
	long n;
} epoch_sums;

int train_local(const experiment_config *cfg, const train_options *opt, void *progress,
		train_report *rep, char *err)
{
	FILE *pf = progress;
	dataset train = {0}, test = {0};
	model m = {0};
	train_state st = {0};
	shard_runner *runner = NULL;
	shard_result *res = NULL;
	int *shard_ids = NULL;
	step_plan plan;
	int r, S = 0;
	memset(rep, 0, sizeof(*rep));
	rep->knn_acc = rep->probe_acc = -1;

	if ((r = dataset_load_dir(&train, &test, cfg->data_dir, cfg->train_limit, err)) < 0)
		return r;
	if ((r = model_build(&m, cfg, train.h, train.w, train.c, err)) < 0)
		goto out;
	if ((r = step_plan_make(&plan, cfg, train.n, err)) < 0)
		goto out;
	if ((r = train_state_init(&st, &m, &plan, &train, err)) < 0)
		goto out;
	S = plan.shards;
	int threads = opt && opt->threads > 0 ? opt->threads : 1;
	runner = shard_runner_new(&m, &plan, threads);
	res = calloc((size_t)S, sizeof(*res));
	shard_ids = calloc((size_t)S, sizeof(int));
	r = -ENOMEM;
	if (!runner || !res || !shard_ids) {
		byol_err(err, r, "out of memory for the step workspace");
		goto out;
	}
	st.pool = shard_runner_pool(runner);
	for (int j = 0; j < S; j++) {
		shard_ids[j] = j;
		if ((r = shard_result_alloc(&res[j], &m)) < 0) {
			byol_err(err, r, "out of memory for shard results");
			goto out;
		}
	}
	if (pf)
		fprintf(pf, "byol: %s %s, %zu parameters, %ld steps of %d images (%d shards of %d), "
			    "%ld images, %d threads\n",
			config_method_name(cfg->method), cfg->encoder == ENCODER_MLP ? "mlp" : "cnn",
			m.L.total, plan.total_steps, plan.batch, S, plan.shard, plan.n_train, threads);

	long knn_every = cfg->knn_every_epochs > 0
				 ? (long)lround(cfg->knn_every_epochs * (double)plan.steps_per_epoch)
				 : 0;
	double t0 = now_seconds(), last_print = t0, eval_time = 0;
	double every = opt && opt->progress_seconds > 0 ? opt->progress_seconds : 5.0;
	epoch_sums cur = {0}, first = {0};
	while (st.step < plan.total_steps) {
		long k = st.step;
		shard_runner_run(runner, &train, st.online, st.target, k, shard_ids, S, res);
		step_metrics sm;
		if ((r = step_apply(&m, &plan, &st, res, S, &sm, err)) < 0)
			goto out;
		long epoch = k / plan.steps_per_epoch;
		if (k % plan.steps_per_epoch == 0)
			cur = (epoch_sums){0};
		cur.loss += sm.loss;
		cur.collapse += sm.collapse;
		cur.n++;
		if (epoch == 0)
			first = cur;
		double t = now_seconds();
		if (pf && (t - last_print >= every || st.step == plan.total_steps)) {
			double img_s = (double)st.step * plan.batch / (t - t0 - eval_time);
			fprintf(pf, "step %ld/%ld epoch %ld loss %.4f collapse %.3f lr %.4f tau %.5f "
				    "%.0f img/s\n",
				st.step, plan.total_steps, epoch + 1, sm.loss, sm.collapse, sm.lr, sm.tau,
				img_s);
			last_print = t;
		}
		if (knn_every && st.step % knn_every == 0 && st.step < plan.total_steps) {
			eval_report ev;
			double e0 = now_seconds();
			openblas_set_num_threads(threads);
			if ((r = train_evaluate(&m, &st, &train, &test, 1, 0, &ev, err)) < 0)
				goto out;
			eval_time += now_seconds() - e0;
			if (pf)
				fprintf(pf, "step %ld: knn %.4f (%.1f s)\n", st.step, ev.knn_acc,
					now_seconds() - e0);
		}
	}
	double t1 = now_seconds();
	rep->steps = st.step;
	rep->train_seconds = t1 - t0 - eval_time;
	rep->img_per_s = rep->train_seconds > 0 ? (double)st.step * plan.batch / rep->train_seconds
						: 0;
	rep->final_loss = cur.n ? cur.loss / (double)cur.n : 0;
	rep->collapse = cur.n ? cur.collapse / (double)cur.n : 0;
	rep->first_epoch_collapse = first.n ? first.collapse / (double)first.n : 0;
	if (opt && opt->checkpoint_path &&
	    (r = checkpoint_save(opt->checkpoint_path, &m, &st, NULL, err)) < 0)
		goto out;
	/* training is over: give its buffers back before the evaluation's */
	for (int j = 0; j < S; j++)
		shard_result_free(&res[j]);
	st.pool = NULL;
	shard_runner_free(runner);
	runner = NULL;
	eval_report ev;
	double e0 = now_seconds();
	openblas_set_num_threads(threads);
	if ((r = train_evaluate(&m, &st, &train, &test, 1, cfg->probe, &ev, err)) < 0)
		goto out;
	rep->eval_seconds = eval_time + now_seconds() - e0;
	rep->knn_acc = ev.knn_acc;
	rep->probe_acc = ev.probe_acc;
	r = 0;
out:
	if (res)
		for (int j = 0; j < S; j++)
			shard_result_free(&res[j]);
	free(res);
	shard_runner_free(runner);
	free(shard_ids);
	train_state_free(&st);
	model_free(&m);
	dataset_free(&train);
	dataset_free(&test);
	return r;
}

/* The config a checkpoint was written with, reading the data from over's
 * data.dir (the same images may live elsewhere on this machine). */
static int checkpoint_config(const char *path, const experiment_config *over,
			     experiment_config *out, char *err)
{
	st_file f;
	int r = safetensors_read(&f, path, err);
	if (r < 0)
		return r;
	const char *json = safetensors_meta(&f, "config");
	if (!json)
		r = byol_err(err, -EINVAL, "%s: no config in the checkpoint's metadata", path);
	else if ((r = config_from_json(out, json, err)) < 0)
		byol_err(err, r, "%s: the checkpoint's config does not parse", path);
	safetensors_free(&f);
	if (r < 0)
		return r;
	memcpy(out->data_dir, over->data_dir, sizeof(out->data_dir));
	return 0;
}

static void eval_settings_from(experiment_config *c, const experiment_config *over)
{
	c->knn_k = over->knn_k;
	c->probe = over->probe;
	c->probe_epochs = over->probe_epochs;
}

int train_eval_checkpoint(const experiment_config *given, const char *path, int threads,
			  train_report *rep, char *err)
{
	dataset train = {0}, test = {0};
	model m = {0};
	train_state st = {0};
	int r;
	memset(rep, 0, sizeof(*rep));
	rep->knn_acc = rep->probe_acc = -1;
	experiment_config saved, *cfg = &saved;
	if ((r = checkpoint_config(path, given, &saved, err)) < 0)
		return r;
	if ((r = dataset_load_dir(&train, &test, cfg->data_dir, cfg->train_limit, err)) < 0)
		return r;
	if ((r = model_build(&m, cfg, train.h, train.w, train.c, err)) < 0 ||
	    (r = train_state_alloc(&st, &m, err)) < 0 ||
	    (r = checkpoint_load(path, &m, &st, err)) < 0)
		goto out;
	eval_settings_from(&m.cfg, given); /* after the config hash was checked */
	openblas_set_num_threads(threads > 0 ? threads : 1);
	eval_report ev;
	double e0 = now_seconds();
	if ((r = train_evaluate(&m, &st, &train, &test, 1, m.cfg.probe, &ev, err)) < 0)
		goto out;
	rep->eval_seconds = now_seconds() - e0;
	rep->steps = st.step;
	rep->knn_acc = ev.knn_acc;
	rep->probe_acc = ev.probe_acc;
out:
	train_state_free(&st);
	model_free(&m);
	dataset_free(&train);
	dataset_free(&test);
	return r;
}
