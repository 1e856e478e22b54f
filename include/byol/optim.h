/*
 * optim.h — optimizers, learning-rate and EMA schedules.
 *
 * The optimizer works over one flat buffer cut by a param_layout: params, grad,
 * and the state buffers m and v all have layout->total floats. Tensors marked
 * no_decay (biases, norm parameters) get neither weight decay nor LARS
 * trust-ratio adaptation. State buffers start zeroed. Everything is
 * deterministic: per-tensor norms are summed in double, in index order.
 *
 * - LARS (You et al. 2017, as in BYOL): g' = g + wd * w; for decayed tensors
 *   g' *= eta * |w| / |g'| (when both norms > 0); m = momentum * m + g';
 *   w -= lr * m.  (v unused.)
 * - SGD: g' = g + wd * w (decayed tensors only); m = momentum * m + g'; w -= lr * m.
 * - AdamW (Loshchilov & Hutter): m, v with bias correction; w -= lr * (mhat /
 *   (sqrt(vhat) + eps) + wd * w) (wd on decayed tensors only).
 * The trust ratio of LARS is per tensor: eta * |w| / |g + wd * w| over that
 * tensor's floats; a tensor whose weights (or whose g') are all zero gets plain
 * momentum SGD for that step.
 */
#ifndef BYOL_OPTIM_H
#define BYOL_OPTIM_H

#include "byol/params.h"

typedef enum { OPTIM_LARS, OPTIM_SGD, OPTIM_ADAMW } optim_kind;

typedef struct {
	optim_kind kind;
	float weight_decay;
	float momentum;         /* LARS, SGD; default 0.9 */
	float lars_eta;         /* LARS trust coefficient; default 1e-3 */
	float beta1, beta2;     /* AdamW; default 0.9, 0.999 */
	float eps;              /* AdamW; default 1e-8 */
} optim_config;

/* One update at learning rate lr; `step` counts from 0 (for Adam's bias
 * correction: 1 - beta^(step + 1)). v may be NULL except for AdamW. Returns 0,
 * or -EINVAL when a gradient or parameter is not finite, lr is not finite, step
 * is negative, the kind is unknown or AdamW has no v; every check is made before
 * anything is written, so on -EINVAL params, m and v are unchanged. */
int optim_step(const optim_config *c, const param_layout *L, float *params,
	       const float *grad, float *m, float *v, float lr, long step);

/* The pieces of optim_step, for callers that update tensors in parallel: the
 * configuration check (0 or -EINVAL), the finiteness check of a buffer (1 when
 * every float is finite), and one tensor's update — optim_step is optim_check,
 * optim_all_finite of grad and params, then optim_tensor_step of each tensor, and
 * gives the same bytes whichever order or thread the tensors are updated in. */
int optim_check(const optim_config *c, float lr, long step, const float *v);
int optim_all_finite(const float *x, size_t n);
void optim_tensor_step(const optim_config *c, const param_tensor *T, float *params,
		       const float *grad, float *m, float *v, float lr, long step);

/* Learning rate at `step` of `total`: linear warmup from 0 over warmup steps
 * (lr at step s < warmup is base * (s + 1) / warmup, so base at s = warmup - 1),
 * then cosine decay from base at s = warmup to 0 at s = total:
 * base * (1 + cos(pi * (s - warmup) / (total - warmup))) / 2. 0 from total on. */
float optim_lr_at(float base, long step, long warmup, long total);

/* BYOL's target decay: tau = 1 - (1 - tau_base) * (cos(pi * step / total) + 1) / 2,
 * so tau_base at step 0 and exactly 1 at total; step is clamped to [0, total],
 * and total <= 0 gives tau_base. */
float ema_tau_at(float tau_base, long step, long total);

/* target = tau * target + (1 - tau) * online over n floats. */
void ema_update(float *target, const float *online, long n, float tau);

#endif
