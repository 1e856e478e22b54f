/*
 * test_svg.c — byolctl's SVG line charts (client/svg.c): nice ticks on linear
 * and log axes, value-to-pixel scaling, tick labels, and the chart itself —
 * one polyline per unbroken stretch of a series, gaps at NaN / inf (and at
 * y <= 0 on a log axis), dots for lone points, escaped labels, a legend.
 * (That the output parses as XML is checked with python3 in tests/e2e/ctl_export.sh.)
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../client/svg.h"
#include "byol/error.h"

/* ---- helpers ---- */

static int count(const char *s, const char *needle)
{
	int n = 0;
	for (const char *p = strstr(s, needle); p; p = strstr(p + 1, needle))
		n++;
	return n;
}

/* The chart as a string (free()). */
static char *render(const svg_chart *c, const svg_series *s, int ns, int *rc)
{
	char *buf = NULL, err[BYOL_ERR_LEN];
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_non_null(f);
	*rc = svg_write(f, c, s, ns, err);
	fclose(f);
	return buf;
}

/* Is step one of 1, 2, 5 times a power of ten? */
static int is_nice(double step)
{
	double mag = pow(10, floor(log10(step) + 1e-9));
	double m = step / mag;
	return fabs(m - 1) < 1e-9 || fabs(m - 2) < 1e-9 || fabs(m - 5) < 1e-9;
}

static void check_linear(double lo, double hi, int target, double want_step, double want_lo,
			 double want_hi)
{
	svg_axis a;
	assert_int_equal(svg_axis_linear(&a, lo, hi, target), 0);
	assert_true(a.n_ticks >= 2);
	double step = a.tick[1] - a.tick[0];
	assert_true(fabs(step - want_step) <= 1e-12 * want_step);
	assert_true(fabs(a.lo - want_lo) <= 1e-12 * fmax(1, fabs(want_lo)));
	assert_true(fabs(a.hi - want_hi) <= 1e-12 * fmax(1, fabs(want_hi)));
	assert_true(a.tick[0] == a.lo && a.tick[a.n_ticks - 1] == a.hi);
}

/* ---- axes ---- */

static void test_linear_ticks(void **state)
{
	(void)state;
	check_linear(0, 1, 5, 0.2, 0, 1);
	check_linear(3, 97, 5, 20, 0, 100);
	check_linear(-1.3, 4.2, 5, 1, -2, 5);
	check_linear(0.001234, 0.00789, 4, 0.002, 0, 0.008);
	check_linear(0, 23400, 6, 5000, 0, 25000);
	check_linear(-0.75, -0.1, 5, 0.1, -0.8, -0.1);
	svg_axis a;
	assert_int_equal(svg_axis_linear(&a, 0, 1, 5), 0);
	assert_int_equal(a.n_ticks, 6);
	assert_int_equal(a.decimals, 1);
	assert_int_equal(svg_axis_linear(&a, 0, 23400, 6), 0);
	assert_int_equal(a.decimals, 0);
	assert_int_equal(svg_axis_linear(&a, 0.001234, 0.00789, 4), 0);
	assert_int_equal(a.decimals, 3);
}

/* Over many random ranges: the ticks are nice, evenly spaced, cover the data
 * and number about the target. */
static void test_linear_ticks_random(void **state)
{
	(void)state;
	srand(7);
	for (int t = 0; t < 5000; t++) {
		double mag = pow(10, rand() % 16 - 8);
		double lo = ((double)rand() / RAND_MAX - 0.5) * mag * 10;
		double hi = lo + (double)rand() / RAND_MAX * mag + mag * 1e-6;
		int target = 2 + rand() % 10;
		svg_axis a;
		assert_int_equal(svg_axis_linear(&a, lo, hi, target), 0);
		double step = a.tick[1] - a.tick[0];
		assert_true(is_nice(step));
		assert_true(a.lo <= lo && a.hi >= hi);
		assert_true(a.lo > lo - step * (1 + 1e-6) && a.hi < hi + step * (1 + 1e-6));
		assert_true(a.n_ticks >= 2 && a.n_ticks <= SVG_MAX_TICKS);
		assert_true(a.n_ticks - 1 <= 2 * target + 2);
		for (int i = 1; i < a.n_ticks; i++)
			assert_true(fabs(a.tick[i] - a.tick[i - 1] - step) <= 1e-9 * step);
	}
}

static void test_degenerate_and_bad_ranges(void **state)
{
	(void)state;
	svg_axis a;
	assert_int_equal(svg_axis_linear(&a, 2.5, 2.5, 5), 0);
	assert_true(a.lo < 2.5 && a.hi > 2.5);
	assert_int_equal(svg_axis_linear(&a, 0, 0, 5), 0);
	assert_true(a.lo <= -1 && a.hi >= 1);
	assert_int_equal(svg_axis_linear(&a, -1e9, -1e9, 5), 0);
	assert_true(a.lo < -1e9 && a.hi > -1e9);
	assert_int_equal(svg_axis_linear(&a, NAN, 1, 5), -EINVAL);
	assert_int_equal(svg_axis_linear(&a, 0, INFINITY, 5), -EINVAL);
	assert_int_equal(svg_axis_linear(&a, 2, 1, 5), -EINVAL);
	assert_int_equal(svg_axis_linear(&a, -1e308, 1e308, 5), -EINVAL);
	assert_int_equal(svg_axis_log(&a, 0, 1), -EINVAL);
	assert_int_equal(svg_axis_log(&a, -1, 1), -EINVAL);
}

static void test_log_ticks(void **state)
{
	(void)state;
	svg_axis a;
	assert_int_equal(svg_axis_log(&a, 3, 40), 0);
	const double want[] = {1, 2, 5, 10, 20, 50, 100};
	assert_int_equal(a.n_ticks, 7);
	for (int i = 0; i < 7; i++)
		assert_true(fabs(a.tick[i] - want[i]) < 1e-9 * want[i]);
	assert_int_equal(svg_axis_log(&a, 0.03, 7), 0);
	const double dec[] = {0.01, 0.1, 1, 10};
	assert_int_equal(a.n_ticks, 4);
	for (int i = 0; i < 4; i++)
		assert_true(fabs(a.tick[i] - dec[i]) < 1e-9 * dec[i]);
	/* 30 decades: whole decades, a few of them, covering the data */
	assert_int_equal(svg_axis_log(&a, 1e-20, 1e10), 0);
	assert_true(a.n_ticks >= 4 && a.n_ticks <= 12);
	assert_true(a.lo <= 1e-20 && a.hi >= 1e10);
	/* a constant positive value */
	assert_int_equal(svg_axis_log(&a, 5, 5), 0);
	assert_true(a.lo <= 5 && a.hi > 5);
	assert_int_equal(svg_axis_log(&a, 10, 10), 0);
	assert_true(a.lo <= 10 && a.hi > 10 && a.n_ticks >= 2);
}

static void test_scaling(void **state)
{
	(void)state;
	svg_axis a;
	assert_int_equal(svg_axis_linear(&a, 0, 10, 5), 0);
	a.px_lo = 100;
	a.px_hi = 500;
	assert_true(fabs(svg_axis_map(&a, 0) - 100) < 1e-9);
	assert_true(fabs(svg_axis_map(&a, 5) - 300) < 1e-9);
	assert_true(fabs(svg_axis_map(&a, 10) - 500) < 1e-9);
	/* a y axis runs upwards: px_lo at the bottom */
	a.px_lo = 400;
	a.px_hi = 40;
	assert_true(fabs(svg_axis_map(&a, 0) - 400) < 1e-9);
	assert_true(fabs(svg_axis_map(&a, 10) - 40) < 1e-9);
	assert_true(fabs(svg_axis_map(&a, 2.5) - 310) < 1e-9);
	assert_int_equal(svg_axis_log(&a, 1, 100), 0);
	a.px_lo = 0;
	a.px_hi = 100;
	assert_true(fabs(svg_axis_map(&a, 10) - 50) < 1e-9);
	assert_true(fabs(svg_axis_map(&a, 100) - 100) < 1e-9);
}

static void test_tick_labels(void **state)
{
	(void)state;
	svg_axis a;
	char b[64];
	assert_int_equal(svg_axis_linear(&a, 0, 1, 5), 0);
	svg_tick_label(&a, a.tick[2], b, sizeof(b));
	assert_string_equal(b, "0.4");
	svg_tick_label(&a, a.tick[3], b, sizeof(b));          /* 3 * 0.2 = 0.6000000000000001 */
	assert_string_equal(b, "0.6");
	svg_tick_label(&a, -0.0, b, sizeof(b));
	assert_string_equal(b, "0");
	assert_int_equal(svg_axis_linear(&a, 0, 23400, 6), 0);
	svg_tick_label(&a, 15000, b, sizeof(b));
	assert_string_equal(b, "15000");
	assert_int_equal(svg_axis_linear(&a, 0, 3e7, 6), 0);
	svg_tick_label(&a, 2e7, b, sizeof(b));
	assert_string_equal(b, "2e+07");
	assert_int_equal(svg_axis_linear(&a, 0, 3e-6, 6), 0);
	svg_tick_label(&a, 1e-6, b, sizeof(b));
	assert_string_equal(b, "1e-06");
	assert_int_equal(svg_axis_log(&a, 0.003, 7), 0);
	svg_tick_label(&a, 0.001, b, sizeof(b));
	assert_string_equal(b, "0.001");
}

/* ---- charts ---- */

static void test_two_series(void **state)
{
	(void)state;
	double x[10], y1[10], y2[10];
	for (int i = 0; i < 10; i++) {
		x[i] = i;
		y1[i] = 4 - 0.3 * i;
		y2[i] = 3.5 - 0.2 * i;
	}
	svg_series s[2] = {{"run 1 a<b & \"c\"", x, y1, 10}, {"run 2", x, y2, 10}};
	svg_chart c = {.title = "loss by step", .x_title = "step", .y_title = "loss"};
	int rc;
	char *svg = render(&c, s, 2, &rc);
	assert_int_equal(rc, 0);
	assert_true(strncmp(svg, "<?xml", 5) == 0);
	assert_non_null(strstr(svg, "<svg xmlns=\"http://www.w3.org/2000/svg\""));
	assert_int_equal(count(svg, "<polyline"), 2);
	assert_int_equal(count(svg, "class=\"series\""), 2);
	assert_int_equal(count(svg, "class=\"legend\""), 1);
	assert_int_equal(count(svg, "<circle"), 0);
	assert_non_null(strstr(svg, ">run 1 a&lt;b &amp; &quot;c&quot;</text>"));
	assert_non_null(strstr(svg, ">run 2</text>"));
	assert_null(strstr(svg, "a<b"));
	assert_non_null(strstr(svg, ">loss by step</text>"));
	assert_int_equal(count(svg, "<g"), count(svg, "</g>"));
	assert_int_equal(count(svg, "<text"), count(svg, "</text>"));
	/* two colours */
	assert_non_null(strstr(svg, "stroke=\"#4e79a7\""));
	assert_non_null(strstr(svg, "stroke=\"#f28e2b\""));
	size_t n = strlen(svg);
	assert_true(n > 7 && strcmp(svg + n - 7, "</svg>\n") == 0);
	free(svg);
}

/* The x, y pairs of the first polyline after `from`, into px, py; their count. */
static int polyline_points(const char *from, double *px, double *py, int max)
{
	const char *p = strstr(from, "<polyline points=\"");
	if (!p)
		return 0;
	p += strlen("<polyline points=\"");
	int n = 0;
	while (*p != '"' && n < max) {
		char *end;
		px[n] = strtod(p, &end);
		assert_true(*end == ',');
		py[n] = strtod(end + 1, &end);
		n++;
		p = end;
		while (*p == ' ')
			p++;
	}
	return n;
}

static void test_points_inside_plot_area(void **state)
{
	(void)state;
	double x[5] = {0, 2.5, 5, 7.5, 10}, y[5] = {1, 3, 2, 5, 4};
	svg_series s = {"r", x, y, 5};
	svg_chart c = {.width = 800, .height = 480};
	int rc;
	char *svg = render(&c, &s, 1, &rc);
	assert_int_equal(rc, 0);
	double px[8], py[8];
	assert_int_equal(polyline_points(strstr(svg, "class=\"series\""), px, py, 8), 5);
	/* the x axis is exactly 0..10 (nice already): the ends touch the frame */
	assert_true(fabs(px[0] - 80) < 0.01 && fabs(px[4] - 776) < 0.01);
	for (int i = 0; i < 5; i++) {
		assert_true(px[i] >= 80 && px[i] <= 776);
		assert_true(py[i] >= 40 && py[i] <= 420);
	}
	/* higher values are higher up, in proportion */
	assert_true(py[3] < py[4] && py[4] < py[1] && py[1] < py[2] && py[2] < py[0]);
	assert_true(fabs((py[0] - py[1]) - 2 * (py[2] - py[1])) < 0.02);
	free(svg);
}

static void test_gaps(void **state)
{
	(void)state;
	double x[10], y[10] = {1, 2, 3, 4, NAN, 6, 7, INFINITY, 9, NAN};
	for (int i = 0; i < 10; i++)
		x[i] = i;
	x[2] = NAN;     /* a bad x is a gap too: [0..1], [3], [5..6], [8] */
	svg_series s = {"gappy", x, y, 10};
	svg_chart c = {0};
	int rc;
	char *svg = render(&c, &s, 1, &rc);
	assert_int_equal(rc, 0);
	assert_int_equal(count(svg, "<polyline"), 2);
	assert_int_equal(count(svg, "<circle"), 2);
	assert_null(strstr(svg, "nan"));
	assert_null(strstr(svg, "inf"));
	free(svg);
}

static void test_single_point_and_constant(void **state)
{
	(void)state;
	double x1[1] = {42}, y1[1] = {0.5};
	double x2[4] = {0, 1, 2, 3}, y2[4] = {7, 7, 7, 7};
	svg_series one = {"one", x1, y1, 1};
	svg_chart c = {0};
	int rc;
	char *svg = render(&c, &one, 1, &rc);
	assert_int_equal(rc, 0);
	assert_int_equal(count(svg, "<polyline"), 0);
	assert_int_equal(count(svg, "<circle"), 1);
	free(svg);
	svg_series flat = {"flat", x2, y2, 4};
	svg = render(&c, &flat, 1, &rc);
	assert_int_equal(rc, 0);
	double px[4], py[4];
	assert_int_equal(polyline_points(svg, px, py, 4), 4);
	for (int i = 0; i < 4; i++) {
		assert_true(py[i] > 40 && py[i] < 420);    /* inside, not on the frame */
		assert_true(fabs(py[i] - py[0]) < 1e-9);
	}
	free(svg);
}

static void test_no_data_and_log(void **state)
{
	(void)state;
	double x[3] = {0, 1, 2}, nan3[3] = {NAN, NAN, NAN};
	svg_series none = {"none", x, nan3, 3};
	svg_chart c = {0};
	int rc;
	char *svg = render(&c, &none, 1, &rc);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(svg, "no data"));
	assert_int_equal(count(svg, "<polyline"), 0);
	free(svg);
	double lx[5] = {0, 1, 2, 3, 4}, ly[5] = {0, -1, 1, 10, 100};
	svg_series pos = {"pos", lx, ly, 5};
	svg_chart lc = {.log_y = 1};
	svg = render(&lc, &pos, 1, &rc);
	assert_int_equal(rc, 0);
	double px[8], py[8];
	assert_int_equal(polyline_points(svg, px, py, 8), 3);
	/* 1, 10, 100 on a log axis 1..100: evenly spaced */
	assert_true(fabs((py[0] - py[1]) - (py[1] - py[2])) < 0.02);
	assert_true(fabs(py[0] - 420) < 0.01 && fabs(py[2] - 40) < 0.01);
	free(svg);
}

/* The x of the legend's box. */
static double legend_x(const char *svg)
{
	const char *p = strstr(svg, "class=\"legend\"");
	assert_non_null(p);
	p = strstr(p, "<rect x=\"");
	assert_non_null(p);
	return strtod(p + strlen("<rect x=\""), NULL);
}

static void test_legend_avoids_the_data(void **state)
{
	(void)state;
	double x[21], up[21], down[21];
	for (int i = 0; i <= 20; i++) {
		x[i] = i;
		up[i] = i;
		down[i] = 20 - i;
	}
	svg_chart c = {0};
	int rc;
	svg_series falling = {"falling", x, down, 21};
	char *svg = render(&c, &falling, 1, &rc);
	assert_int_equal(rc, 0);
	assert_true(legend_x(svg) > 400);       /* top right is empty */
	free(svg);
	svg_series rising = {"rising", x, up, 21};
	svg = render(&c, &rising, 1, &rc);
	assert_int_equal(rc, 0);
	assert_true(legend_x(svg) < 400);       /* top right holds the end of the line */
	free(svg);
}

static void test_errors(void **state)
{
	(void)state;
	char err[BYOL_ERR_LEN];
	svg_chart c = {0};
	FILE *f = fopen("/dev/null", "w");
	assert_non_null(f);
	assert_int_equal(svg_write(f, &c, NULL, 0, err), -EINVAL);
	svg_series bad = {"bad", NULL, NULL, 3};
	assert_int_equal(svg_write(f, &c, &bad, 1, err), -EINVAL);
	svg_chart tiny = {.width = 50, .height = 50};
	double x = 1, y = 1;
	svg_series ok = {"ok", &x, &y, 1};
	assert_int_equal(svg_write(f, &tiny, &ok, 1, err), -EINVAL);
	fclose(f);
	assert_int_equal(svg_write_file("/nonexistent-dir/x.svg", &c, &ok, 1, err), -ENOENT);
	assert_non_null(strstr(err, "/nonexistent-dir/x.svg"));
}

static void test_write_file(void **state)
{
	(void)state;
	char dir[512], path[600], tmp[610], err[BYOL_ERR_LEN];
	const char *base = getenv("TMPDIR");
	snprintf(dir, sizeof(dir), "%s/test_svg.XXXXXX", base && base[0] ? base : "/tmp");
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/chart.svg", dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	double x[2] = {0, 1}, y[2] = {1, 2};
	svg_series s = {"s", x, y, 2};
	svg_chart c = {0};
	assert_int_equal(svg_write_file(path, &c, &s, 1, err), 0);
	assert_int_equal(access(path, R_OK), 0);
	assert_int_equal(access(tmp, F_OK), -1);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_linear_ticks),
		cmocka_unit_test(test_linear_ticks_random),
		cmocka_unit_test(test_degenerate_and_bad_ranges),
		cmocka_unit_test(test_log_ticks),
		cmocka_unit_test(test_scaling),
		cmocka_unit_test(test_tick_labels),
		cmocka_unit_test(test_two_series),
		cmocka_unit_test(test_points_inside_plot_area),
		cmocka_unit_test(test_gaps),
		cmocka_unit_test(test_single_point_and_constant),
		cmocka_unit_test(test_no_data_and_log),
		cmocka_unit_test(test_legend_avoids_the_data),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_write_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
