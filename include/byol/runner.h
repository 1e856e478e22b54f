/*
 * runner.h — the worker half of a step over several shards at once.
 *
 * A shard_runner computes shard gradients on a pool of threads, one shard per
 * thread at a time, each thread with its own step_workspace, and OpenBLAS held to
 * one thread. This is how byold uses several cores: the result of a shard is then
 * the same bytes whatever the thread count of the worker that computed it
 * (multi-threaded sgemm splits its sums differently with different thread
 * counts on some kernels), and the non-matmul work (augmentation, norms) runs in
 * parallel too.
 */
#ifndef BYOL_RUNNER_H
#define BYOL_RUNNER_H

#include "byol/step.h"

typedef struct shard_runner shard_runner;

/* threads >= 1. Returns NULL when out of memory. */
shard_runner *shard_runner_new(const model *m, const step_plan *plan, int threads);

/* results[i] = step_shard_gradient(..., k, shards[i]) for i < n. Sets OpenBLAS to
 * one thread. */
void shard_runner_run(shard_runner *r, const dataset *train, const float *online,
		      const float *target, long k, const int *shards, int n,
		      shard_result *results);

/* The runner's pool (owned by the runner), for other work between steps such as
 * step_apply's (train_state.pool). */
struct pool *shard_runner_pool(shard_runner *r);

void shard_runner_free(shard_runner *r);

#endif
