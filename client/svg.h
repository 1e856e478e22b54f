/*
 * svg.h — line charts as standalone SVG files, written by byolctl itself (plot,
 * and any command that draws curves); and dot charts of groups (report).
 *
 * A chart is a set of series (x, y arrays of the same length, a label) drawn
 * as one coloured polyline each inside a frame with axes, "nice" ticks (steps
 * of 1, 2 or 5 times a power of ten; decades on a log axis), tick labels, axis
 * titles, a title and a legend (in the corner of the plot that hides the fewest
 * points). A point whose x or y is NaN or infinite (or
 * y <= 0 on a log axis) is a gap: the polyline stops there and starts again
 * after it. A lone point between gaps is drawn as a dot. The axes cover every
 * drawable point; a constant series gets a range around its value. The output
 * is well-formed XML (labels are escaped) with one <g class="series"> per
 * series and one <g class="legend">.
 */
#ifndef BYOL_CLIENT_SVG_H
#define BYOL_CLIENT_SVG_H

#include <stddef.h>
#include <stdio.h>

#define SVG_MAX_TICKS 64

typedef struct {
	const char *label;
	const double *x, *y;            /* (n) */
	size_t n;
} svg_series;

typedef struct {
	const char *title, *x_title, *y_title;    /* NULL: none */
	int width, height;              /* pixels; 0: 800 x 480 */
	int log_y;                      /* y on a log10 scale */
} svg_chart;

/* One axis: the data range [lo, hi] (after nice rounding) mapped to pixels
 * [px_lo, px_hi] (px_hi < px_lo for a y axis), with its ticks. */
typedef struct {
	double lo, hi;
	int log;
	double px_lo, px_hi;
	double tick[SVG_MAX_TICKS];
	int n_ticks;
	int decimals;                   /* for the labels of a linear axis */
} svg_axis;

/* Nice ticks for data in [lo, hi] (lo <= hi, finite), about `target` (>= 2)
 * intervals: the step is 1, 2 or 5 times a power of ten, the range is widened
 * to whole steps, and a degenerate range (lo == hi) to one around the value.
 * Fills a->lo, a->hi, a->tick, a->n_ticks, a->decimals. Returns 0, or -EINVAL
 * for a range that is not finite. */
int svg_axis_linear(svg_axis *a, double lo, double hi, int target);

/* The same on a log10 scale for lo > 0: whole decades, with 2 and 5 inside
 * when the range spans at most two decades. Returns 0 or -EINVAL. */
int svg_axis_log(svg_axis *a, double lo, double hi);

/* The pixel of value v on a (v within the axis range maps inside [px_lo, px_hi]). */
double svg_axis_map(const svg_axis *a, double v);

/* The text of tick value v on a ("0.25", "1e-05", "2000"), into buf. */
void svg_tick_label(const svg_axis *a, double v, char *buf, size_t n);

/* Writes the chart to f. Returns 0, or -EINVAL (no series, or a series with
 * n > 0 and NULL arrays) with err; -EIO when f reports a write error. */
int svg_write(FILE *f, const svg_chart *c, const svg_series *s, int ns, char *err);

/* svg_write into path.tmp, then renamed over path. Returns 0 or -errno with err
 * naming the file. */
int svg_write_file(const char *path, const svg_chart *c, const svg_series *s, int ns,
		   char *err);

/* One group of a dot chart: its values, and a mean with an error bar of
 * ± err (NaN: no bar; a NaN mean: no marker). */
typedef struct {
	const char *label;
	const double *v;                /* (n); NaN values are left out */
	size_t n;
	double mean, err;
} svg_group;

/* A dot chart (report's probe accuracy per variant): one column per group,
 * labels slanted under the frame (at most 40 characters drawn); each value a
 * hollow circle spread across its column, the mean a thick bar with its error
 * bar. The y axis covers every value and bar (not forced to 0); x_title names
 * the grouping. Well-formed XML with one <g class="group"> per group. Returns
 * 0, or -EINVAL (no group, a group with n > 0 and no values array) with err;
 * -EIO when f reports a write error. */
int svg_write_groups(FILE *f, const svg_chart *c, const svg_group *g, int ng, char *err);

/* svg_write_groups into path.tmp, then renamed over path. Returns 0 or -errno
 * with err naming the file. */
int svg_write_groups_file(const char *path, const svg_chart *c, const svg_group *g, int ng,
			  char *err);

#endif
