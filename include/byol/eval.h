/*
 * eval.h — how good a representation is: linear probe and kNN accuracy.
 *
 * Both take frozen features computed by the caller: train features (NTR, D) with
 * labels, test features (NTE, D) with labels, labels in [0, K), K <= 256. Neither
 * keeps any pointer it is given, and neither copies the train features. Both are
 * deterministic for a given input (the probe's shuffling uses rng streams keyed by
 * `seed`). A label out of range or a feature that is not finite is -EINVAL.
 */
#ifndef BYOL_EVAL_H
#define BYOL_EVAL_H

#include <stdint.h>

typedef struct {
	int epochs;             /* passes over the train set; default 30 */
	int batch;              /* minibatch; default 256 */
	float lr;               /* Adam learning rate; default 1e-3 */
	float weight_decay;     /* L2 on the weights; default 1e-5 */
	uint64_t seed;
} probe_config;

probe_config probe_defaults(void);

/* Multinomial logistic regression on standardised features (mean and std per
 * dimension from the train set, std floored at 1e-6), weights from zero, trained
 * on the mean softmax cross-entropy plus weight_decay/2 |W|^2 by minibatch Adam
 * (betas 0.9, 0.999) with the learning rate on a cosine from lr to 0 over all
 * steps; epoch e visits the train set in the order rng_permutation(seed, e).
 * Stores the test accuracy in [0, 1] in *acc (ties between logits go to the
 * lower class). Returns 0, -ENOMEM or -EINVAL (with err); *acc is written only
 * on success. Memory: O(batch * D + D * K) beyond the inputs. On Fashion-MNIST's
 * raw pixels the defaults reach ~84.5% test accuracy. */
int eval_probe(double *acc, const float *train, const uint8_t *train_labels, int ntr,
	       const float *test, const uint8_t *test_labels, int nte, int D, int K,
	       const probe_config *c, char *err);

/* Weighted kNN (Wu et al. 2018): cosine similarity between l2-normalised
 * features, the k nearest train samples vote with weight exp(sim / temperature);
 * stores the test accuracy in *acc. Computed in blocks of 256 test rows with
 * sgemm (memory: 256 * NTR floats beyond the inputs). Ties are deterministic: of
 * equally similar train samples the lower index is nearer, of equal votes the
 * lower class wins. k > NTR means all of them. Returns 0, -ENOMEM or -EINVAL (k <
 * 1, temperature not > 0, bad labels or features; with err). */
int eval_knn(double *acc, const float *train, const uint8_t *train_labels, int ntr,
	     const float *test, const uint8_t *test_labels, int nte, int D, int K, int k,
	     float temperature, char *err);

#endif
