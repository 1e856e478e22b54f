/*
 * model.h — the networks of one experiment: encoder, projector, predictor.
 *
 * model_build turns an experiment config into a list of ops (linear or 3x3 conv,
 * norm, relu, average pool) and one param_layout for the online network, in the
 * order encoder, projector, predictor. The target network (BYOL's EMA copy) is
 * the encoder + projector: the first n_target floats of the same layout, so a
 * target buffer is a prefix-shaped copy and the EMA update is one loop. SimCLR has
 * no predictor (pred_end == proj_end).
 *
 * Every linear/conv is followed by its module's norm (unless it is a module's
 * last layer: the projector and predictor outputs are plain linear), then ReLU;
 * with norm = none the linear has a bias, otherwise the norm's beta plays that
 * part. gn_ws standardises the weight of the linear/conv before the group norm.
 * BN ops own a slot in a second layout, the running statistics ("bn" buffer:
 * running mean then running var per BN op), used in evaluation mode.
 *
 * A model_pass holds the activations (and, unless built without gradients, their
 * gradients) of one forward/backward pass over at most B samples; passes are
 * independent, so the two views of a step each get their own. Nothing in the
 * model is written after model_build: one model may serve several passes.
 */
#ifndef BYOL_MODEL_H
#define BYOL_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "byol/config.h"
#include "byol/params.h"

typedef enum { OP_LINEAR, OP_CONV, OP_NORM, OP_RELU, OP_POOL } op_kind;

typedef struct {
	op_kind kind;
	int module;             /* 0 encoder, 1 projector, 2 predictor */
	int in_c, out_c;        /* features / channels in and out */
	int h, w, ho, wo;       /* spatial size in and out (1 x 1 for an MLP) */
	int stride;             /* conv */
	int ws;                 /* linear/conv: weight standardised (gn_ws) */
	norm_kind norm;         /* norm op */
	int groups;             /* norm op: groups (1 for ln) */
	int p_w, p_b;           /* param tensor indices: weight/gamma, bias/beta; -1 none */
	int bn_slot;            /* norm op with bn: index of its running mean in bn_layout */
} model_op;

typedef struct {
	experiment_config cfg;
	param_layout L;         /* online parameters */
	size_t n_target;        /* floats of the encoder + projector prefix */
	param_layout bn_layout; /* running mean/var of each BN op */
	model_op *ops;
	int n_ops;
	int enc_end, proj_end, pred_end;        /* op index just past each module */
	int in_h, in_w, in_c, in_dim;           /* input image */
	int rep_dim, proj_dim;                  /* representation y and projection z */
} model;

/* Builds the ops and layouts for cfg over images of (h, w, c). Returns 0 or
 * -EINVAL / -ENOMEM with err. */
int model_build(model *m, const experiment_config *cfg, int h, int w, int c, char *err);
void model_free(model *m);

/* He-normal weights (std sqrt(2 / fan_in)), zero biases, unit gammas, zero betas,
 * drawn from rng streams keyed by (seed, tensor index); params (L.total). */
void model_init_default(const model *m, float *params, uint64_t seed);

typedef struct model_pass model_pass;

/* A pass for up to B samples; with_grad = 0 for passes never run backward. */
model_pass *model_pass_new(const model *m, int B, int with_grad);
void model_pass_free(model_pass *p);

/* Forward over ops [0, upto) of x (B, in_dim) with params. train = 1 uses batch
 * statistics (BN) and records them; train = 0 uses bn_running (may be NULL when
 * no op is BN). Returns the output of op upto-1: (B, out features of that op),
 * owned by the pass. */
const float *model_forward(const model *m, model_pass *p, const float *params,
			   const float *bn_running, const float *x, int B, int upto, int train);

/* The output of op i of the last forward (B, out features). */
const float *model_output(const model_pass *p, int i);

/* Backward from dout (B, out of op upto-1) through ops [0, upto) of the last
 * forward of p: grad (L.total) += d loss / d params. Zeroes the pass's own
 * activation gradients first. */
void model_backward(const model *m, model_pass *p, const float *params, float *grad,
		    const float *dout, int B, int upto);

/* The BN batch statistics of the last training forward: for each BN op, mean
 * then biased variance, written into stats (bn_layout.total) — only for BN ops
 * among [0, upto) of that forward. */
void model_bn_stats(const model *m, const model_pass *p, float *stats);

/* Data-dependent init (Richemond et al. 2020): forwards x (B, in_dim) through the
 * online network op by op, and rescales each linear/conv so that its
 * pre-activations have zero mean (through its bias, where it has one) and unit
 * variance per output unit over the batch. */
int model_init_modified(const model *m, float *params, const float *x, int B, char *err);

#endif
