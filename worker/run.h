/*
 * run.h — what a networked byol-worker holds for the run it serves, and the
 * computing it does for it: building the run from RunSetup, keeping the online
 * and target replicas in step with StepParams, computing tree nodes and
 * evaluations. No I/O but the dataset; no event loop (worker/net.c drives these
 * from the libuv threadpool and the loop thread).
 *
 * Replicas: online holds the parameters of step online_step, target (BYOL) those
 * of step target_step. StepParams k hands over the online parameters; its target is
 * copied when present, else the worker moves its own replica as the coordinator
 * does: target = ema(target, online_k, ema_tau_at(tau_base, k - 1, total)),
 * which needs target_step == k - 1.
 *
 * Legend: P online parameter floats, NT target floats, NB BN-statistic floats,
 * S shards per step.
 */
#ifndef BYOL_WORKER_RUN_H
#define BYOL_WORKER_RUN_H

#include <stddef.h>
#include <stdint.h>

#include "byol/config.h"
#include "byol/data.h"
#include "byol/error.h"
#include "byol/model.h"
#include "byol/runner.h"
#include "byol/step.h"

/* What RunSetup says (proto/byol.proto). */
typedef struct {
	uint64_t run_id;
	const char *config_json;
	uint64_t param_count, target_count, bn_count, n_train, total_steps;
} run_setup_args;

typedef struct {
	uint64_t run_id;
	char *config_json;      /* as received, to recognise the same run again */
	experiment_config cfg;
	model m;
	dataset train, test;
	step_plan plan;
	shard_runner *runner;
	int threads;
	shard_result *leaves;   /* (S) the current job's leaf results, compacted */
	int *shards;            /* (S) the current job's shard ids */
	float *online;          /* (P) from conn_take; NULL until the first StepParams */
	float *target;          /* (NT); NULL unless BYOL */
	size_t P, NT, NB;
	long online_step, target_step;  /* -1: not received */
} run_state;

/* Builds a run from RunSetup: the config from its JSON, the dataset, the model,
 * the plan, checks every count of a against this worker's own, and allocates
 * the replicas and a shard_runner of `threads` threads. Slow (loads the
 * dataset): call it off the loop thread. Returns a new run in *out, or a
 * negative code with "run N: ..." in err (*out NULL). */
int run_build(run_state **out, const run_setup_args *a, int threads, char *err);

/* Frees everything of rs. NULL is harmless. */
void run_free(run_state *rs);

/* 0 when a's counts are this run's; else -EINVAL naming the first that differs. */
int run_check_counts(const run_state *rs, const run_setup_args *a, char *err);

/* StepParams{step, online, target}: checks the byte sizes against P and NT and
 * the replica steps, then updates the replicas (see the top). online is handed
 * over (conn_take: it becomes the online replica, given back with
 * conn_tensor_free when replaced, or at once on failure). Returns 0, or
 * -EPROTO with the reason (nothing else changed). */
int run_apply_params(run_state *rs, uint64_t step, float *online, size_t online_len,
		     const void *target, size_t target_len, char *err);

/* Checks a ShardAssign of `step` with n nodes [lo[i], hi[i]): the replicas are
 * at step, each is a node of the tree over S shards, none overlaps another.
 * Returns 0 or -EPROTO with the reason. */
int run_check_nodes(const run_state *rs, uint64_t step, const uint32_t *lo,
		    const uint32_t *hi, int n, char *err);

/* Computes the n nodes of step `step` (checked by run_check_nodes) on the run's
 * shard_runner: node i is then in rs->leaves[off[i]] (off: n ints, set here).
 * Uses rs->leaves and rs->shards: one call at a time. */
void run_compute_nodes(run_state *rs, long step, const int *lo, const int *hi, int n,
		       int *off);

/* kNN ("knn") or linear-probe ("probe") accuracy of the encoder online (P) with
 * BN running statistics bn (NB, may be NULL when NB is 0) into *acc, on
 * `threads` OpenBLAS threads. Returns 0 or a negative code with err. */
int run_evaluate(run_state *rs, const char *kind, const float *online, const float *bn,
		 int threads, double *acc, char *err);

/* One line to stderr: a UTC timestamp as byold writes them
 * ("2024-05-01T12:00:00.123Z"), the program and pid, the message. One write per
 * line, so lines from several threads do not mix. */
void worker_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
