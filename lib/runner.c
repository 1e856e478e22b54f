#include "byol/runner.h"

#include <cblas.h>
#include <stdlib.h>

#include "byol/pool.h"

struct shard_runner {
	const model *m;
	const step_plan *plan;
	pool *pool;
	step_workspace **ws;    /* one per thread */
	int threads;
	/* the current run */
	const dataset *train;
	const float *online, *target;
	long k;
	const int *shards;
	shard_result *results;
};

shard_runner *shard_runner_new(const model *m, const step_plan *plan, int threads)
{
	shard_runner *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->m = m;
	r->plan = plan;
	r->threads = threads;
	r->ws = calloc((size_t)threads, sizeof(*r->ws));
	if (!r->ws || !(r->pool = pool_new(threads)))
		goto fail;
	for (int i = 0; i < threads; i++)
		if (!(r->ws[i] = step_workspace_new(m, plan)))
			goto fail;
	return r;
fail:
	shard_runner_free(r);
	return NULL;
}

static void run_one(void *arg, int thread, int task)
{
	shard_runner *r = arg;
	step_shard_gradient(r->m, r->ws[thread], r->plan, r->train, r->online, r->target, r->k,
			    r->shards[task], &r->results[task]);
}

void shard_runner_run(shard_runner *r, const dataset *train, const float *online,
		      const float *target, long k, const int *shards, int n,
		      shard_result *results)
{
	openblas_set_num_threads(1);
	r->train = train;
	r->online = online;
	r->target = target;
	r->k = k;
	r->shards = shards;
	r->results = results;
	pool_run(r->pool, run_one, r, n);
}

struct pool *shard_runner_pool(shard_runner *r)
{
	return r->pool;
}

void shard_runner_free(shard_runner *r)
{
	if (!r)
		return;
	pool_free(r->pool);
	if (r->ws)
		for (int i = 0; i < r->threads; i++)
			step_workspace_free(r->ws[i]);
	free(r->ws);
	free(r);
}
