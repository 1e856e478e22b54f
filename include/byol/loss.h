/*
 * loss.h — the objectives and the collapse monitor.
 *
 * Dimension legend: B rows (samples of one view), D projection dimension.
 * Every loss returns the SUM over its rows (the coordinator divides by the global
 * batch) and, when the gradient pointers are not NULL, ACCUMULATES (+=) the
 * gradient of that sum. Internal sums are in double. Row norms are clamped below
 * at 1e-12 (as F.normalize does): a zero row counts as cosine 0 with every other
 * row, and its gradient stays finite (no NaN). Nothing here allocates except
 * loss_collapse (2D doubles).
 */
#ifndef BYOL_LOSS_H
#define BYOL_LOSS_H

/* BYOL / SimSiam regression: sum_i 2 - 2 * <p_i, z_i> / (|p_i| |z_i|).
 * p, z (B, D); z is a constant (stop-gradient); dp (B, D) += d/dp. */
double loss_cosine(float *dp, const float *p, const float *z, int B, int D);

/* SimCLR NT-Xent over the 2B projections {z1_i, z2_i}: for each anchor a, with
 * positive the other view of the same sample and negatives the other 2B - 2
 * projections, -log softmax over cosine similarity / temperature; returns the
 * sum over the 2B anchors. z1, z2 (B, D); dz1, dz2 (B, D) += (either may be
 * NULL; each z appears as anchor, positive and negative, and gets all three
 * terms). temperature > 0; the log-sum-exp is shifted by the row maximum, so a
 * small temperature does not overflow. scratch holds at least
 * loss_ntxent_scratch(B, D) floats (2 * 2B * D + (2B)^2), owned by the caller
 * and overwritten. */
double loss_ntxent(float *dz1, float *dz2, const float *z1, const float *z2, int B,
		   int D, float temperature, float *scratch);
long loss_ntxent_scratch(int B, int D);

/* Collapse figure: the standard deviation over the B rows of the l2-normalised
 * rows of z, averaged over the D dimensions, times sqrt(D). About 1 for a
 * healthy, spread representation; 0 when every row is the same. The standard
 * deviation is the sample one (divisor B - 1); B < 2 gives 0, and NaN is
 * returned only when its 2D doubles of scratch cannot be allocated. */
double loss_collapse(const float *z, int B, int D);

#endif
