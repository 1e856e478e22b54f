/*
 * optim.c — LARS, SGD with momentum, AdamW; warmup + cosine learning rate; the
 * BYOL target-decay schedule and the EMA update.
 *
 * Dimension legend: P = layout->total, the floats of the whole parameter buffer;
 * n = the floats of one tensor.
 *
 * Every optimizer walks the layout's tensors in index order. Norms are summed in
 * double in a fixed order (eight interleaved partial sums), so the result is
 * bit-for-bit the same on every machine that runs the same binary, and the same
 * whichever thread updates which tensor.
 */
#include "byol/optim.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>

int optim_all_finite(const float *x, size_t n)
{
	/* exponent bits all ones = inf or nan; or-ing a flag keeps the loop vectorisable */
	const uint32_t *u = (const uint32_t *)x;
	uint32_t bad = 0;
	for (size_t i = 0; i < n; i++)
		bad |= (uint32_t)((u[i] & 0x7f800000u) == 0x7f800000u);
	return !bad;
}

/* Sum of squares in double, in eight interleaved partial sums (fixed order, so
 * deterministic; independent chains, so not latency-bound). */
static void sq_norms(const float *w, const float *g, float wd, size_t n, double *wn, double *gn)
{
	double a[8] = {0}, b[8] = {0};
	size_t i = 0;
	for (; i + 8 <= n; i += 8)
		for (int k = 0; k < 8; k++) {
			float gi = g[i + k] + wd * w[i + k];
			a[k] += (double)w[i + k] * w[i + k];
			b[k] += (double)gi * gi;
		}
	for (; i < n; i++) {
		float gi = g[i] + wd * w[i];
		a[0] += (double)w[i] * w[i];
		b[0] += (double)gi * gi;
	}
	*wn = ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
	*gn = ((b[0] + b[1]) + (b[2] + b[3])) + ((b[4] + b[5]) + (b[6] + b[7]));
}

/* LARS / SGD over one tensor: w, m (n); g (n). */
static void momentum_tensor(const optim_config *c, float *restrict w, const float *restrict g,
			    float *restrict m, size_t n, int decay, int lars, float lr)
{
	const float wd = decay ? c->weight_decay : 0.0f;
	float scale = 1.0f;
	if (lars && decay) {
		double wn, gn;
		sq_norms(w, g, wd, n, &wn, &gn);
		wn = sqrt(wn);
		gn = sqrt(gn);
		if (wn > 0.0 && gn > 0.0)
			scale = (float)(c->lars_eta * wn / gn);
	}
	const float mom = c->momentum;
	for (size_t i = 0; i < n; i++) {
		float gi = (g[i] + wd * w[i]) * scale;
		m[i] = mom * m[i] + gi;
		w[i] -= lr * m[i];
	}
}

/* AdamW over one tensor: w, m, v (n); g (n), in float as the frameworks do.
 * bc1, bc2 are 1 - beta^(step + 1). */
static void adamw_tensor(const optim_config *c, float *restrict w, const float *restrict g,
			 float *restrict m, float *restrict v, size_t n, int decay, float lr,
			 double bc1, double bc2)
{
	const float wd = decay ? c->weight_decay : 0.0f;
	const float b1 = c->beta1, b2 = c->beta2, eps = c->eps;
	const float ib1 = (float)(1.0 / bc1), sib2 = (float)(1.0 / sqrt(bc2));
	for (size_t i = 0; i < n; i++) {
		m[i] = b1 * m[i] + (1.0f - b1) * g[i];
		v[i] = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
		float upd = (m[i] * ib1) / (sqrtf(v[i]) * sib2 + eps) + wd * w[i];
		w[i] -= lr * upd;
	}
}

int optim_check(const optim_config *c, float lr, long step, const float *v)
{
	if (c->kind != OPTIM_LARS && c->kind != OPTIM_SGD && c->kind != OPTIM_ADAMW)
		return -EINVAL;
	if (c->kind == OPTIM_ADAMW && !v)
		return -EINVAL;
	if (!isfinite(lr) || step < 0)
		return -EINVAL;
	return 0;
}

void optim_tensor_step(const optim_config *c, const param_tensor *T, float *params,
		       const float *grad, float *m, float *v, float lr, long step)
{
	size_t o = T->offset;
	int decay = !T->no_decay;
	if (c->kind == OPTIM_ADAMW) {
		double bc1 = 1.0 - pow(c->beta1, (double)step + 1.0);
		double bc2 = 1.0 - pow(c->beta2, (double)step + 1.0);
		adamw_tensor(c, params + o, grad + o, m + o, v + o, T->count, decay, lr, bc1, bc2);
	} else {
		momentum_tensor(c, params + o, grad + o, m + o, T->count, decay,
				c->kind == OPTIM_LARS, lr);
	}
}

int optim_step(const optim_config *c, const param_layout *L, float *params,
	       const float *grad, float *m, float *v, float lr, long step)
{
	int r = optim_check(c, lr, step, v);
	if (r < 0)
		return r;
	if (!optim_all_finite(grad, L->total) || !optim_all_finite(params, L->total))
		return -EINVAL;
	for (int t = 0; t < L->n; t++)
		optim_tensor_step(c, &L->t[t], params, grad, m, v, lr, step);
	return 0;
}

float optim_lr_at(float base, long step, long warmup, long total)
{
	if (step < 0)
		step = 0;
	if (step < warmup)
		return (float)((double)base * (double)(step + 1) / (double)warmup);
	if (step >= total)
		return 0.0f;
	double progress = (double)(step - warmup) / (double)(total - warmup);
	return (float)((double)base * 0.5 * (1.0 + cos(M_PI * progress)));
}

float ema_tau_at(float tau_base, long step, long total)
{
	if (total <= 0)
		return tau_base;
	if (step < 0)
		step = 0;
	if (step > total)
		step = total;
	double c = cos(M_PI * (double)step / (double)total);
	return (float)(1.0 - (1.0 - (double)tau_base) * (c + 1.0) / 2.0);
}

void ema_update(float *restrict target, const float *restrict online, long n, float tau)
{
	const float keep = tau, take = 1.0f - tau;
	for (long i = 0; i < n; i++)
		target[i] = keep * target[i] + take * online[i];
}
