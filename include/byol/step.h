/*
 * step.h — the two halves of one synchronous data-parallel training step.
 *
 * The global batch of B images of step k is cut into S = B / shard_size shards.
 * Which images form shard j of step k is a pure function of (seed, epoch, k, j):
 * epoch e = k / steps_per_epoch uses rng_permutation(seed, e) of the train set,
 * and the step's batch is the next B entries of it (an incomplete last batch of
 * an epoch is dropped). Every augmentation draw is keyed by (seed, epoch, image,
 * view).
 *
 * Worker half, step_shard_gradient: two views -> online network, target network
 * (no gradient), the method's loss, backward -> a shard_result (gradient SUM over
 * the shard's samples, loss sum, BN batch statistics, collapse figure).
 *
 * Coordinator half, step_apply: sums shard results over a fixed tree in SHARD
 * ORDER (never arrival order), divides by B,
 * runs the optimizer at the step's learning rate, folds the BN batch statistics
 * into the running statistics, and (BYOL) moves the target towards the online
 * parameters with the step's tau. So the result of a step depends only on the
 * shard results, never on which process computed them or in what order they
 * arrived.
 */
#ifndef BYOL_STEP_H
#define BYOL_STEP_H

#include <stdint.h>

#include "byol/augment.h"
#include "byol/data.h"
#include "byol/model.h"

/* The schedule of a run: fixed by the config and the train set size. */
typedef struct {
	long n_train;           /* images in the train set */
	int batch, shard, shards;       /* B, images per shard, S */
	long steps_per_epoch;
	long total_steps;
	long warmup_steps;
	float base_lr;          /* cfg.lr * B / 256 */
} step_plan;

int step_plan_make(step_plan *plan, const experiment_config *cfg, long n_train, char *err);

/* Everything a run's coordinator keeps: the master copy of the model. */
typedef struct {
	long step;              /* steps applied so far */
	float *online;          /* (L.total) */
	float *target;          /* (n_target); BYOL only, else NULL */
	float *m, *v;           /* (L.total) optimizer state; v for AdamW only */
	float *bn_running;      /* (bn_layout.total): running mean / var per BN op */
	/* scratch of step_apply */
	float *grad_sum;        /* (L.total) */
	float *bn_sum;          /* (bn_layout.total) */
	int *bad;               /* (L.n) */
	struct pool *pool;      /* not owned; when set, step_apply runs tensors on it */
} train_state;

/* Allocates a run's state: step 0, zeroed optimizer state, BN running means 0
 * and variances 1, parameters not yet set (load a checkpoint into it, or call
 * train_state_init_params). Returns 0 or -ENOMEM with err. */
int train_state_alloc(train_state *st, const model *m, char *err);
/* Sets the parameters of step 0: default init, or the data-dependent init on the
 * first global batch of epoch 0; the target (BYOL) a copy of the online network. */
int train_state_init_params(train_state *st, const model *m, const step_plan *plan,
			    const dataset *train, char *err);
/* train_state_alloc + train_state_init_params (freed on failure). */
int train_state_init(train_state *st, const model *m, const step_plan *plan,
		     const dataset *train, char *err);
void train_state_free(train_state *st);

typedef struct {
	float *grad;            /* (L.total) gradient of the loss SUM over the shard */
	float *bn_stats;        /* (bn_layout.total) batch mean / var, averaged over views */
	double loss;            /* loss summed over the shard's samples */
	double collapse;        /* collapse figure of the online projection (view 0) */
	int n;                  /* samples */
} shard_result;

int shard_result_alloc(shard_result *r, const model *m);
void shard_result_free(shard_result *r);

/* Per-process buffers of the worker half; sized once for the shard size. */
typedef struct step_workspace step_workspace;
step_workspace *step_workspace_new(const model *m, const step_plan *plan);
void step_workspace_free(step_workspace *ws);

/* The indices into the train set of shard j of step k: idx (plan->shard). */
void step_shard_indices(step_workspace *ws, const step_plan *plan, uint64_t seed, long k,
			int j, uint32_t *idx);

/* Worker half. online (L.total) and target (n_target; ignored unless BYOL) are
 * the parameters of step k. Overwrites *out. */
void step_shard_gradient(const model *m, step_workspace *ws, const step_plan *plan,
			 const dataset *train, const float *online, const float *target,
			 long k, int j, shard_result *out);

/* What step_apply reports of the step it applied. */
typedef struct {
	long step;              /* the step just applied (0-based) */
	double loss;            /* mean over the global batch */
	double lr, tau;
	double collapse;        /* mean over shards */
} step_metrics;

/* The reduction tree. Shard results are summed over a fixed binary tree on the
 * shard indices [0, S): node [lo, hi) with hi - lo >= 2 has the children [lo, mid)
 * and [mid, hi), mid = step_tree_mid(lo, hi) (the left child is the largest power
 * of two below hi - lo). Addition in floats is not associative; with the tree
 * fixed, the sum is the same bytes whichever nodes were pre-reduced where, so a
 * worker that holds a whole node of shards sends one result for all of them. */
int step_tree_mid(int lo, int hi);
/* 1 when [lo, hi) is a node of the tree over S shards. */
int step_tree_is_node(int S, int lo, int hi);

/* Worker side: reduces the leaf results leaves[lo .. hi-1] (shards lo .. hi-1)
 * into leaves[lo], which then holds node [lo, hi). Overwrites the others. */
void step_reduce_node(const model *m, shard_result *leaves, int lo, int hi);

/* Coordinator half: applies step st->step. slots[x] holds the result of tree node
 * [x, node_hi[x]) for x = 0, node_hi[0], node_hi[node_hi[0]], ... up to S: the
 * nodes must partition the shards. The sum runs over the tree in place (the
 * slots are overwritten); then the optimizer, the BN running statistics and (BYOL)
 * the EMA target, tensor by tensor, on st->pool when set — the bytes do not
 * depend on it. Advances st->step. Returns 0, or -EINVAL when the nodes do not
 * partition the shards or the gradient is not finite (train state unchanged). */
int step_apply_nodes(const model *m, const step_plan *plan, train_state *st,
		     shard_result *slots, const int *node_hi, step_metrics *out, char *err);

/* step_apply_nodes with all S leaves: results[j] is shard j (overwritten). */
int step_apply(const model *m, const step_plan *plan, train_state *st,
	       shard_result *results, int S, step_metrics *out, char *err);

#endif
