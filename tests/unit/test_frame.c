/*
 * test_frame.c — the framing layer: a stream fed a byte at a time, in one chunk,
 * and in random chunks (1000 frames of random sizes against a reference, through
 * both feed and prepare/commit), lengths refused before any allocation, zero
 * lengths, garbage, streams that end inside a frame, a dead reader staying dead,
 * buffer reuse, and Envelopes packed and unpacked through the arena.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "byol/error.h"
#include "byol/frame.h"

static uint64_t rs = 88172645463325252ull;
static uint64_t rnd(void)
{
	rs ^= rs << 13;
	rs ^= rs >> 7;
	rs ^= rs << 17;
	return rs;
}

/* A reference stream: n frames with payload sizes from size_of(i). */
typedef struct {
	int n;
	size_t *len;
	size_t *off;             /* payload offsets in buf */
	uint8_t *buf;
	size_t total;
} stream;

static void stream_make(stream *s, int n, size_t (*size_of)(int))
{
	s->n = n;
	s->len = calloc((size_t)n, sizeof(size_t));
	s->off = calloc((size_t)n, sizeof(size_t));
	assert_non_null(s->len);
	assert_non_null(s->off);
	s->total = 0;
	for (int i = 0; i < n; i++) {
		s->len[i] = size_of(i);
		s->total += FRAME_HEADER + s->len[i];
	}
	s->buf = malloc(s->total);
	assert_non_null(s->buf);
	size_t p = 0;
	for (int i = 0; i < n; i++) {
		size_t L = s->len[i];
		s->buf[p] = (uint8_t)(L >> 24);
		s->buf[p + 1] = (uint8_t)(L >> 16);
		s->buf[p + 2] = (uint8_t)(L >> 8);
		s->buf[p + 3] = (uint8_t)L;
		s->off[i] = p + FRAME_HEADER;
		for (size_t k = 0; k < L; k++)
			s->buf[p + FRAME_HEADER + k] = (uint8_t)(rnd() >> 32);
		p += FRAME_HEADER + L;
	}
}

static void stream_free(stream *s)
{
	free(s->len);
	free(s->off);
	free(s->buf);
}

/* Checks every delivered frame against the reference, in order. */
typedef struct {
	const stream *ref;
	int got;
	int in_place;            /* frames delivered pointing into the fed chunk */
	int fail_at;             /* return an error on this frame (-1: never) */
} checker;

static int check_cb(void *ud, const uint8_t *frame, size_t len, char *err)
{
	checker *k = ud;
	if (k->got == k->fail_at) {
		k->got++;
		return byol_err(err, -ECANCELED, "stopped at frame %d", k->got - 1);
	}
	assert_true(k->got < k->ref->n);
	assert_int_equal(len, k->ref->len[k->got]);
	const uint8_t *want = k->ref->buf + k->ref->off[k->got];
	assert_memory_equal(frame, want, len);
	if (frame == want)
		k->in_place++;
	k->got++;
	return 0;
}

static size_t size_small(int i) { return 1 + (size_t)(i * 37 % 300); }

static size_t size_mixed(int i)
{
	(void)i;
	uint64_t r = rnd() % 100;
	if (r < 70)
		return 1 + rnd() % 256;
	if (r < 95)
		return 1 + rnd() % 16384;
	return 1 + rnd() % 200000;
}

static void test_byte_at_a_time(void **state)
{
	(void)state;
	stream s;
	stream_make(&s, 60, size_small);
	frame_reader r;
	frame_reader_init(&r, 0);
	checker k = {&s, 0, 0, -1};
	char err[BYOL_ERR_LEN];
	int ended = 0; /* frames whose last byte has been fed */
	for (size_t i = 0; i < s.total; i++) {
		assert_int_equal(frame_reader_feed(&r, s.buf + i, 1, check_cb, &k, err), 0);
		if (ended < s.n && i + 1 == s.off[ended] + s.len[ended])
			ended++;
		/* each frame is delivered exactly when its last byte arrives */
		assert_int_equal(k.got, ended);
		int boundary = ended > 0 && i + 1 == s.off[ended - 1] + s.len[ended - 1];
		assert_int_equal(frame_reader_finish(&r, NULL), boundary ? 0 : -EPROTO);
		assert_int_equal(frame_reader_in_frame(&r), !boundary);
	}
	assert_int_equal(k.got, 60);
	assert_int_equal(r.frames, 60);
	assert_int_equal(r.bytes, s.total);
	assert_int_equal(frame_reader_finish(&r, err), 0);
	frame_reader_free(&r);
	stream_free(&s);
}

static void test_one_chunk_in_place(void **state)
{
	(void)state;
	stream s;
	stream_make(&s, 200, size_small);
	frame_reader r;
	frame_reader_init(&r, 0);
	checker k = {&s, 0, 0, -1};
	char err[BYOL_ERR_LEN];
	assert_int_equal(frame_reader_feed(&r, s.buf, s.total, check_cb, &k, err), 0);
	assert_int_equal(k.got, 200);
	/* whole frames in one chunk are handed over without a copy... */
	assert_int_equal(k.in_place, 200);
	/* ...and the reader allocated nothing */
	assert_null(r.buf);
	assert_int_equal(r.grows, 0);
	assert_int_equal(frame_reader_finish(&r, err), 0);
	frame_reader_free(&r);
	stream_free(&s);
}

/* 1000 frames of random sizes, cut at random, through feed and through
 * prepare/commit (a simulated socket that returns at most what was asked). */
static void run_random(int use_prepare, uint64_t seed)
{
	rs = seed;
	stream s;
	stream_make(&s, 1000, size_mixed);
	frame_reader r;
	frame_reader_init(&r, 0);
	checker k = {&s, 0, 0, -1};
	char err[BYOL_ERR_LEN];
	size_t p = 0;
	while (p < s.total) {
		size_t want;
		switch (rnd() % 4) {
		case 0: want = 1 + rnd() % 8; break;
		case 1: want = 1 + rnd() % 512; break;
		case 2: want = 1 + rnd() % 70000; break;
		default: want = 1 + rnd() % 300000; break;
		}
		if (want > s.total - p)
			want = s.total - p;
		if (use_prepare) {
			uint8_t *buf;
			size_t cap;
			assert_int_equal(frame_reader_prepare(&r, &buf, &cap, err), 0);
			assert_true(cap > 0 && cap <= r.read_size);
			if (want > cap)
				want = cap;
			memcpy(buf, s.buf + p, want);
			assert_int_equal(frame_reader_commit(&r, want, check_cb, &k, err), 0);
		} else {
			assert_int_equal(frame_reader_feed(&r, s.buf + p, want, check_cb, &k,
							   err), 0);
		}
		p += want;
	}
	assert_int_equal(k.got, 1000);
	assert_int_equal(frame_reader_finish(&r, err), 0);
	/* buffers grew a handful of times at most, never past the largest frame */
	assert_true(r.grows <= 8);
	size_t maxlen = 0;
	for (int i = 0; i < s.n; i++)
		maxlen = s.len[i] > maxlen ? s.len[i] : maxlen;
	assert_true(r.cap <= 2 * maxlen);
	frame_reader_free(&r);
	stream_free(&s);
}

static void test_random_chunking_feed(void **state)
{
	(void)state;
	for (uint64_t seed = 1; seed <= 3; seed++)
		run_random(0, seed * 0x9E3779B97F4A7C15ull);
}

static void test_random_chunking_prepare(void **state)
{
	(void)state;
	for (uint64_t seed = 1; seed <= 3; seed++)
		run_random(1, seed * 0xC2B2AE3D27D4EB4Full);
}

static int never_cb(void *ud, const uint8_t *frame, size_t len, char *err)
{
	(void)frame;
	(void)len;
	(void)err;
	(*(int *)ud)++;
	return 0;
}

static void test_oversized_refused_before_alloc(void **state)
{
	(void)state;
	frame_reader r;
	frame_reader_init(&r, 1 << 20);
	int calls = 0;
	char err[BYOL_ERR_LEN] = "", err2[BYOL_ERR_LEN] = "";
	/* 1 MiB + 1, a byte at a time: refused on the 4th byte */
	const uint8_t hdr[4] = {0x00, 0x10, 0x00, 0x01};
	for (int i = 0; i < 3; i++)
		assert_int_equal(frame_reader_feed(&r, hdr + i, 1, never_cb, &calls, err), 0);
	assert_int_equal(frame_reader_feed(&r, hdr + 3, 1, never_cb, &calls, err), -EMSGSIZE);
	assert_non_null(strstr(err, "1048577"));
	assert_non_null(strstr(err, "1048576"));
	/* nothing was allocated for it */
	assert_null(r.buf);
	assert_null(r.stage);
	assert_int_equal(r.grows, 0);
	assert_int_equal(calls, 0);
	/* dead: the same error from every call */
	uint8_t ok[5] = {0, 0, 0, 1, 42};
	assert_int_equal(frame_reader_feed(&r, ok, 5, never_cb, &calls, err2), -EMSGSIZE);
	assert_string_equal(err, err2);
	uint8_t *b;
	size_t n;
	assert_int_equal(frame_reader_prepare(&r, &b, &n, err2), -EMSGSIZE);
	assert_null(b);
	assert_null(r.stage);
	assert_int_equal(frame_reader_finish(&r, err2), -EMSGSIZE);
	assert_string_equal(err, err2);
	assert_int_equal(calls, 0);
	frame_reader_free(&r);

	/* the default limit: 0x7FFFFFFF refused, and 0xFFFFFFFF (an attachment frame of
	 * as many bytes); an empty attachment frame refused like an empty frame;
	 * exactly the limit accepted */
	const struct {
		uint8_t hdr[4];
		int code;
		const char *msg;
	} bad[] = {
		{{0x7f, 0xff, 0xff, 0xff}, -EMSGSIZE,
		 "frame length 2147483647 exceeds the limit 268435456"},
		{{0xff, 0xff, 0xff, 0xff}, -EMSGSIZE,
		 "attachment frame length 2147483647 exceeds the limit 268435456"},
		{{0x80, 0, 0, 0}, -EBADMSG, "zero-length attachment frame"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		frame_reader_init(&r, 0);
		assert_int_equal(frame_reader_feed(&r, bad[i].hdr, 4, never_cb, &calls, err),
				 bad[i].code);
		assert_non_null(strstr(err, bad[i].msg));
		assert_null(r.buf);
		frame_reader_free(&r);
	}

	frame_reader_init(&r, 1000);
	uint8_t at[4 + 1000] = {0, 0, 0x03, 0xe8};
	assert_int_equal(frame_reader_feed(&r, at, sizeof(at), never_cb, &calls, err), 0);
	assert_int_equal(calls, 1);
	frame_reader_free(&r);
}

static void test_zero_length(void **state)
{
	(void)state;
	frame_reader r;
	frame_reader_init(&r, 0);
	int calls = 0;
	char err[BYOL_ERR_LEN];
	uint8_t s[] = {0, 0, 0, 2, 7, 7, 0, 0, 0, 0, 0, 0, 0, 1, 9};
	assert_int_equal(frame_reader_feed(&r, s, sizeof(s), never_cb, &calls, err), -EBADMSG);
	assert_non_null(strstr(err, "zero-length"));
	assert_int_equal(calls, 1); /* the frame before it, not the one after */
	assert_int_equal(frame_reader_feed(&r, s, 6, never_cb, &calls, err), -EBADMSG);
	assert_int_equal(calls, 1);
	frame_reader_free(&r);
}

static void test_garbage(void **state)
{
	(void)state;
	frame_reader r;
	frame_reader_init(&r, 0);
	int calls = 0;
	char err[BYOL_ERR_LEN];
	const char *http = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
	assert_int_equal(frame_reader_feed(&r, http, strlen(http), never_cb, &calls, err),
			 -EMSGSIZE);
	assert_non_null(strstr(err, "1195725856")); /* "GET " as a length */
	assert_int_equal(calls, 0);
	frame_reader_free(&r);

	/* framed garbage does not unpack */
	frame_arena a;
	frame_arena_init(&a);
	Byol__Envelope *e = (Byol__Envelope *)1;
	uint8_t ff[100];
	memset(ff, 0xff, sizeof(ff));
	assert_int_equal(frame_decode(&a, ff, sizeof(ff), &e, err), -EBADMSG);
	assert_null(e);
	assert_non_null(strstr(err, "malformed Envelope"));
	assert_non_null(strstr(err, "100-byte"));
	/* a truncated submessage */
	uint8_t trunc[] = {0x72, 0x10, 0x08, 0x01}; /* field 14, 16 bytes promised */
	assert_int_equal(frame_decode(&a, trunc, sizeof(trunc), &e, err), -EBADMSG);
	/* well-formed protobuf with no known message: field 99 varint */
	uint8_t unknown[] = {0x98, 0x06, 0x01};
	assert_int_equal(frame_decode(&a, unknown, sizeof(unknown), &e, err), -EBADMSG);
	assert_non_null(strstr(err, "unknown message (field 99)"));
	/* random bytes: never a crash, and mostly refused */
	rs = 12345;
	int refused = 0;
	for (int t = 0; t < 2000; t++) {
		uint8_t g[64];
		size_t n = 1 + rnd() % sizeof(g);
		for (size_t i = 0; i < n; i++)
			g[i] = (uint8_t)rnd();
		if (frame_decode(&a, g, n, &e, err) < 0)
			refused++;
		else
			assert_int_not_equal(e->msg_case, BYOL__ENVELOPE__MSG__NOT_SET);
	}
	assert_true(refused > 1500);
	frame_arena_free(&a);
}

/* Field number 0 does not exist; protobuf-c refuses it in a one-byte tag but
 * unpacks an overlong one (0x82 0x00) as an unknown field, which then packs as
 * 0x02, which it refuses: such a frame is malformed, at any depth. */
static void test_field_zero(void **state)
{
	(void)state;
	frame_arena a;
	frame_arena_init(&a);
	Byol__Envelope *e;
	char err[BYOL_ERR_LEN];
	const uint8_t in_heartbeat[] = { 0x2a, 0x03, 0x82, 0x00, 0x00 };
	const uint8_t in_envelope[] = { 0x82, 0x00, 0x00, 0x2a, 0x00 };
	const uint8_t in_node[] = { 0x6a, 0x05, 0x1a, 0x03, 0x82, 0x00, 0x00 };
	const uint8_t *bad[] = { in_heartbeat, in_envelope, in_node };
	const size_t bad_len[] = { sizeof(in_heartbeat), sizeof(in_envelope), sizeof(in_node) };
	for (int i = 0; i < 3; i++) {
		e = (Byol__Envelope *)1;
		assert_int_equal(frame_decode(&a, bad[i], bad_len[i], &e, err), -EBADMSG);
		assert_null(e);
		assert_non_null(strstr(err, "field numbered 0"));
	}
	/* the same places without the bad field decode */
	assert_int_equal(frame_decode(&a, (const uint8_t[]){ 0x2a, 0x00 }, 2, &e, err), 0);
	assert_int_equal(frame_decode(&a, (const uint8_t[]){ 0x6a, 0x02, 0x1a, 0x00 }, 4, &e,
				      err), 0);
	assert_int_equal(e->shard_assign->n_node, 1);
	/* an unknown field of another number is kept, and packs back to the same */
	const uint8_t newer[] = { 0x2a, 0x03, 0x98, 0x06, 0x01 };
	assert_int_equal(frame_decode(&a, newer, sizeof(newer), &e, err), 0);
	uint8_t *buf;
	size_t len;
	assert_int_equal(frame_encode(e, &buf, &len, err), 0);
	assert_int_equal(len, FRAME_HEADER + sizeof(newer));
	assert_memory_equal(buf + FRAME_HEADER, newer, sizeof(newer));
	free(buf);
	frame_arena_free(&a);
}

static void test_truncated_at_eof(void **state)
{
	(void)state;
	frame_reader r;
	frame_reader_init(&r, 0);
	int calls = 0;
	char err[BYOL_ERR_LEN];
	uint8_t s[4 + 4096] = {0, 0, 0x10, 0x00};
	assert_int_equal(frame_reader_finish(&r, err), 0);
	assert_int_equal(frame_reader_feed(&r, s, 4 + 1000, never_cb, &calls, err), 0);
	assert_int_equal(frame_reader_finish(&r, err), -EPROTO);
	assert_non_null(strstr(err, "inside a frame: 1000 of 4096 bytes"));
	assert_int_equal(frame_reader_feed(&r, s + 1004, 3096, never_cb, &calls, err), 0);
	assert_int_equal(calls, 1);
	assert_int_equal(frame_reader_finish(&r, err), 0);
	assert_int_equal(frame_reader_feed(&r, s, 2, never_cb, &calls, err), 0);
	assert_int_equal(frame_reader_finish(&r, err), -EPROTO);
	assert_non_null(strstr(err, "frame header: 2 of 4"));
	frame_reader_free(&r);
}

static void test_callback_error_is_sticky(void **state)
{
	(void)state;
	stream s;
	stream_make(&s, 10, size_small);
	frame_reader r;
	frame_reader_init(&r, 0);
	checker k = {&s, 0, 0, 3};
	char err[BYOL_ERR_LEN], err2[BYOL_ERR_LEN];
	assert_int_equal(frame_reader_feed(&r, s.buf, s.total, check_cb, &k, err), -ECANCELED);
	assert_string_equal(err, "stopped at frame 3");
	assert_int_equal(k.got, 4); /* frames 4..9 never delivered */
	assert_int_equal(frame_reader_feed(&r, s.buf, 10, check_cb, &k, err2), -ECANCELED);
	assert_string_equal(err2, "stopped at frame 3");
	assert_int_equal(k.got, 4);
	frame_reader_free(&r);
	stream_free(&s);
}

static size_t size_8m(int i) { return i == 3 ? ((size_t)1 << 20) : ((size_t)8 << 20) - 77; }

/* A large-frame stream allocates its body buffer once and reuses it. */
static void test_buffer_reuse(void **state)
{
	(void)state;
	stream s;
	stream_make(&s, 6, size_8m);
	char err[BYOL_ERR_LEN];
	for (int mode = 0; mode < 2; mode++) {
		frame_reader r;
		frame_reader_init(&r, 0);
		checker k = {&s, 0, 0, -1};
		uint8_t *first = NULL;
		size_t p = 0, direct = 0, reads = 0;
		while (p < s.total) {
			size_t n = 65536 - 3;
			if (n > s.total - p)
				n = s.total - p;
			if (mode == 0) {
				assert_int_equal(frame_reader_feed(&r, s.buf + p, n, check_cb, &k,
								   err), 0);
			} else {
				uint8_t *b;
				size_t cap;
				assert_int_equal(frame_reader_prepare(&r, &b, &cap, err), 0);
				if (r.buf && b >= r.buf && b < r.buf + r.cap)
					direct++;
				n = n < cap ? n : cap;
				memcpy(b, s.buf + p, n);
				assert_int_equal(frame_reader_commit(&r, n, check_cb, &k, err), 0);
			}
			reads++;
			p += n;
			if (k.got == 1 && !first) {
				first = r.buf;
				assert_non_null(first);
			}
		}
		assert_int_equal(k.got, 6);
		assert_ptr_equal(r.buf, first);
		assert_int_equal(r.grows, 1);
		assert_int_equal(r.cap, ((size_t)8 << 20) - 77);
		/* with prepare/commit almost every read lands in the frame itself */
		if (mode == 1)
			assert_true(direct * 10 > reads * 9);
		frame_reader_free(&r);
	}
	stream_free(&s);
}

static void test_commit_checks(void **state)
{
	(void)state;
	frame_reader r;
	frame_reader_init(&r, 0);
	uint8_t *b;
	size_t n;
	char err[BYOL_ERR_LEN];
	int calls = 0;
	assert_int_equal(frame_reader_prepare(&r, &b, &n, err), 0);
	assert_int_equal(n, FRAME_READ_SIZE);
	assert_int_equal(frame_reader_commit(&r, n + 1, never_cb, &calls, err), -EINVAL);
	/* commit without prepare */
	assert_int_equal(frame_reader_commit(&r, 1, never_cb, &calls, err), -EINVAL);
	frame_reader_free(&r);
}

/* ---- Envelopes ---- */

static void test_pack_decode_roundtrip(void **state)
{
	(void)state;
	size_t nf = (size_t)2 << 20; /* 8 MiB of floats */
	float *grad = malloc(nf * sizeof(float));
	assert_non_null(grad);
	for (size_t i = 0; i < nf; i++)
		grad[i] = (float)i * 0.5f - 3.0f;
	Byol__NodeResult sr = BYOL__NODE_RESULT__INIT;
	Byol__Envelope e = BYOL__ENVELOPE__INIT;
	sr.run_id = 7;
	sr.step = 123456789012ull;
	sr.lo = 2;
	sr.hi = 4;
	sr.grad.data = (uint8_t *)grad;
	sr.grad.len = nf * sizeof(float);
	sr.loss = -1.25;
	sr.n = 64;
	char err[BYOL_ERR_LEN];
	size_t len;
	uint8_t *buf;
	/* no message: refused */
	assert_int_equal(frame_encode(&e, &buf, &len, err), -EINVAL);
	assert_null(buf);
	e.msg_case = BYOL__ENVELOPE__MSG_NODE_RESULT;
	e.node_result = &sr;
	size_t fs = frame_size(&e);
	assert_true(fs > nf * 4 + 4);
	buf = malloc(fs);
	assert_non_null(buf);
	assert_int_equal(frame_pack(&e, buf, fs - 1, &len, err), -ENOSPC);
	assert_int_equal(frame_pack(&e, buf, fs, &len, err), 0);
	assert_int_equal(len, fs);
	size_t L = (size_t)buf[0] << 24 | (size_t)buf[1] << 16 | (size_t)buf[2] << 8 | buf[3];
	assert_int_equal(L, fs - 4);
	uint8_t *enc;
	assert_int_equal(frame_encode(&e, &enc, &len, err), 0);
	assert_int_equal(len, fs);
	assert_memory_equal(enc, buf, fs);
	free(enc);

	frame_arena a;
	frame_arena_init(&a);
	uint64_t mallocs = 0;
	for (int round = 0; round < 5; round++) {
		Byol__Envelope *d;
		assert_int_equal(frame_decode(&a, buf + 4, fs - 4, &d, err), 0);
		assert_int_equal(d->msg_case, BYOL__ENVELOPE__MSG_NODE_RESULT);
		Byol__NodeResult *r = d->node_result;
		assert_int_equal(r->run_id, 7);
		assert_int_equal(r->step, 123456789012ull);
		assert_int_equal(r->lo, 2);
		assert_int_equal(r->hi, 4);
		assert_int_equal(r->n, 64);
		assert_true(r->loss == -1.25);
		assert_int_equal(r->grad.len, nf * 4);
		assert_int_equal((uintptr_t)r->grad.data % 16, 0);
		assert_memory_equal(r->grad.data, grad, nf * 4);
		assert_int_equal(r->bn_stats.len, 0);
		/* the arena's block and the gradient's own allocation came with the
		 * first frame; none since */
		if (round == 0)
			mallocs = a.mallocs;
		assert_int_equal(a.mallocs, mallocs);
	}
	assert_int_equal(mallocs, 2);
	frame_arena_free(&a);
	free(buf);
	free(grad);
}

/* Many small submessages outgrow the first estimate: spill once, then fit. */
static void test_arena_grows_to_fit(void **state)
{
	(void)state;
	enum { N = 3000 };
	Byol__RunStatus rs_[N], *rp[N];
	for (int i = 0; i < N; i++) {
		byol__run_status__init(&rs_[i]);
		rs_[i].run_id = (uint64_t)i + 1;
		rs_[i].name = "r";
		rp[i] = &rs_[i];
	}
	Byol__ListReply lr = BYOL__LIST_REPLY__INIT;
	lr.n_runs = N;
	lr.runs = rp;
	Byol__Envelope e = BYOL__ENVELOPE__INIT;
	e.msg_case = BYOL__ENVELOPE__MSG_LIST_REPLY;
	e.list_reply = &lr;
	uint8_t *buf;
	size_t len;
	char err[BYOL_ERR_LEN];
	assert_int_equal(frame_encode(&e, &buf, &len, err), 0);
	frame_arena a;
	frame_arena_init(&a);
	Byol__Envelope *d;
	assert_int_equal(frame_decode(&a, buf + 4, len - 4, &d, err), 0);
	assert_int_equal(d->list_reply->n_runs, N);
	assert_int_equal(d->list_reply->runs[N - 1]->run_id, N);
	assert_true(a.mallocs > 1); /* spilled: structs outweigh the bytes */
	assert_int_equal(frame_decode(&a, buf + 4, len - 4, &d, err), 0);
	uint64_t m = a.mallocs;
	for (int i = 0; i < 3; i++) {
		assert_int_equal(frame_decode(&a, buf + 4, len - 4, &d, err), 0);
		assert_string_equal(d->list_reply->runs[i]->name, "r");
	}
	assert_int_equal(a.mallocs, m);
	assert_null(a.spill);
	frame_arena_free(&a);
	free(buf);
}

/* A decoded tensor handed over: it outlives the next decode; what is not
 * adopted is the arena's, and a small field never is adoptable. */
static void test_arena_adopt(void **state)
{
	(void)state;
	size_t nf = 100000;
	float *g = malloc(nf * sizeof(float)), small[4] = {1, 2, 3, 4};
	assert_non_null(g);
	for (size_t i = 0; i < nf; i++)
		g[i] = (float)i;
	Byol__NodeResult nr = BYOL__NODE_RESULT__INIT;
	Byol__Envelope e = BYOL__ENVELOPE__INIT;
	nr.grad.data = (uint8_t *)g;
	nr.grad.len = nf * sizeof(float);
	nr.bn_stats.data = (uint8_t *)small;
	nr.bn_stats.len = sizeof(small);
	e.msg_case = BYOL__ENVELOPE__MSG_NODE_RESULT;
	e.node_result = &nr;
	uint8_t *buf;
	size_t len;
	char err[BYOL_ERR_LEN];
	assert_int_equal(frame_encode(&e, &buf, &len, err), 0);
	frame_arena a;
	frame_arena_init(&a);
	Byol__Envelope *d;
	assert_int_equal(frame_decode(&a, buf + 4, len - 4, &d, err), 0);
	assert_null(frame_arena_adopt(&a, d->node_result->bn_stats.data));
	assert_null(frame_arena_adopt(&a, g));
	float *mine = frame_arena_adopt(&a, d->node_result->grad.data);
	assert_non_null(mine);
	assert_null(frame_arena_adopt(&a, mine)); /* once only */
	for (int i = 0; i < 3; i++) /* reuses nothing of mine */
		assert_int_equal(frame_decode(&a, buf + 4, len - 4, &d, err), 0);
	assert_ptr_not_equal(d->node_result->grad.data, (uint8_t *)mine);
	assert_memory_equal(mine, g, nf * sizeof(float));
	free(mine);
	frame_arena_free(&a);
	free(buf);
	free(g);
}

/* frame_pack_head + the tail in place: the same message as frame_pack's, with
 * the tail's field last; errors leave the tail as it was. */
static void test_pack_head(void **state)
{
	(void)state;
	size_t sizes[] = {0, 1, 127, 128, 70000};
	for (size_t t = 0; t < sizeof(sizes) / sizeof(sizes[0]); t++) {
		size_t nb = sizes[t];
		uint8_t *tail = malloc(nb + 1), bn[12] = {9, 8, 7, 6, 5, 4, 3, 2, 1};
		assert_non_null(tail);
		for (size_t i = 0; i < nb; i++)
			tail[i] = (uint8_t)(i * 31 + 7);
		Byol__NodeResult nr = BYOL__NODE_RESULT__INIT;
		Byol__Envelope e = BYOL__ENVELOPE__INIT;
		nr.run_id = 3;
		nr.step = 300;
		nr.lo = 1;
		nr.hi = 2;
		nr.grad.data = tail;
		nr.grad.len = nb;
		nr.bn_stats.data = bn;
		nr.bn_stats.len = sizeof(bn);
		nr.loss = 0.5;
		nr.n = 64;
		e.msg_case = BYOL__ENVELOPE__MSG_NODE_RESULT;
		e.node_result = &nr;
		uint8_t head[256];
		size_t hl, fl;
		char err[BYOL_ERR_LEN];
		assert_int_equal(frame_pack_head(&e, &nr.grad, 5, head, 10, &hl, &fl, err), -ENOSPC);
		assert_ptr_equal(nr.grad.data, tail);
		assert_int_equal(nr.grad.len, nb);
		assert_int_equal(frame_pack_head(&e, &nr.grad, 5, head, sizeof(head), &hl, &fl, err),
				 0);
		assert_ptr_equal(nr.grad.data, tail);
		assert_int_equal(fl, frame_size(&e));
		assert_int_equal(fl, hl + nb);
		uint8_t *frame = malloc(fl);
		assert_non_null(frame);
		memcpy(frame, head, hl);
		memcpy(frame + hl, tail, nb);
		size_t L = (size_t)frame[0] << 24 | (size_t)frame[1] << 16 | (size_t)frame[2] << 8 |
			   frame[3];
		assert_int_equal(L, fl - 4);
		frame_arena a;
		frame_arena_init(&a);
		Byol__Envelope *d;
		assert_int_equal(frame_decode(&a, frame + 4, fl - 4, &d, err), 0);
		assert_int_equal(d->msg_case, BYOL__ENVELOPE__MSG_NODE_RESULT);
		const Byol__NodeResult *r = d->node_result;
		assert_int_equal(r->run_id, 3);
		assert_int_equal(r->step, 300);
		assert_int_equal(r->hi, 2);
		assert_int_equal(r->n, 64);
		assert_true(r->loss == 0.5);
		assert_int_equal(r->grad.len, nb);
		if (nb)
			assert_memory_equal(r->grad.data, tail, nb);
		assert_int_equal(r->bn_stats.len, sizeof(bn));
		assert_memory_equal(r->bn_stats.data, bn, sizeof(bn));
		frame_arena_free(&a);
		free(frame);
		free(tail);
	}
	/* not a message member / no message */
	Byol__Envelope none = BYOL__ENVELOPE__INIT;
	ProtobufCBinaryData b = {0, NULL};
	uint8_t head[64];
	size_t hl, fl;
	char err[BYOL_ERR_LEN];
	assert_int_equal(frame_pack_head(&none, &b, 5, head, sizeof(head), &hl, &fl, err), -EINVAL);
}

/* What frame_reader_feed hands over, and whether each was an attachment. */
typedef struct {
	frame_reader *r;
	int n;
	int attachment[4];
	size_t len[4];
	uint8_t *taken;          /* the body of an attachment taken from the reader */
	size_t taken_cap;
	uint8_t *msg;            /* a copy of the message frame */
	size_t msg_len;
} attach_seen;

static int attach_cb(void *ud, const uint8_t *frame, size_t len, char *err)
{
	attach_seen *s = ud;
	(void)err;
	s->attachment[s->n] = frame_reader_is_attachment(s->r);
	s->len[s->n++] = len;
	if (s->attachment[s->n - 1]) {
		s->taken = frame_reader_take_body(s->r, frame, NULL, 0, &s->taken_cap);
		if (!s->taken) {
			s->taken = malloc(len);
			memcpy(s->taken, frame, len);
		}
	} else {
		s->msg = malloc(len);
		memcpy(s->msg, frame, len);
		s->msg_len = len;
	}
	return 0;
}

static void test_pack_attached(void **state)
{
	(void)state;
	size_t sizes[] = {1, 127, 70000, 300000};
	for (size_t t = 0; t < sizeof(sizes) / sizeof(sizes[0]); t++) {
		size_t nb = sizes[t];
		uint8_t *tail = malloc(nb);
		assert_non_null(tail);
		for (size_t i = 0; i < nb; i++)
			tail[i] = (uint8_t)(i * 13 + 1);
		Byol__StepParams sp = BYOL__STEP_PARAMS__INIT;
		Byol__Envelope e = BYOL__ENVELOPE__INIT;
		sp.run_id = 7;
		sp.step = 70;
		sp.online.data = tail;
		sp.online.len = nb;
		e.msg_case = BYOL__ENVELOPE__MSG_STEP_PARAMS;
		e.step_params = &sp;
		uint8_t head[128];
		size_t hl;
		char err[BYOL_ERR_LEN];
		assert_int_equal(frame_pack_attached(&e, &sp.online, head, 8, &hl, err), -ENOSPC);
		assert_int_equal(frame_pack_attached(&e, &sp.online, head, sizeof(head), &hl, err), 0);
		assert_ptr_equal(sp.online.data, tail);     /* restored */
		assert_int_equal(sp.online.len, nb);
		assert_int_equal(e.attachment, 0);           /* e itself untouched */
		/* the bytes: the message frame, then the attachment frame */
		uint8_t *bytes = malloc(hl + nb);
		assert_non_null(bytes);
		memcpy(bytes, head, hl);
		memcpy(bytes + hl, tail, nb);
		frame_reader r;
		frame_reader_init(&r, 0);
		attach_seen seen = {.r = &r};
		/* in pieces of 1000 bytes: a large body is buffered, and can be taken */
		for (size_t at = 0; at < hl + nb; at += 1000) {
			size_t n = hl + nb - at < 1000 ? hl + nb - at : 1000;
			assert_int_equal(frame_reader_feed(&r, bytes + at, n, attach_cb, &seen, err), 0);
		}
		assert_int_equal(seen.n, 2);
		assert_int_equal(seen.attachment[0], 0);
		assert_int_equal(seen.attachment[1], 1);
		assert_int_equal(seen.len[1], nb);
		assert_memory_equal(seen.taken, tail, nb);
		if (nb >= FRAME_ADOPT_MIN)
			assert_null(r.buf);      /* taken; the reader makes a new one */
		frame_arena a;
		frame_arena_init(&a);
		Byol__Envelope *d;
		assert_int_equal(frame_decode(&a, seen.msg, seen.msg_len, &d, err), 0);
		assert_int_equal(d->msg_case, BYOL__ENVELOPE__MSG_STEP_PARAMS);
		assert_int_equal(d->attachment, nb);
		assert_int_equal(d->step_params->step, 70);
		assert_int_equal(d->step_params->online.len, 0);
		/* the arena keeps a held buffer, hands it over once, recycles it */
		uint8_t *own = malloc(FRAME_ADOPT_MIN);
		assert_int_equal(frame_arena_hold(&a, own, FRAME_ADOPT_MIN), 0);
		assert_ptr_equal(frame_arena_adopt(&a, own), own);
		assert_null(frame_arena_adopt(&a, own));
		assert_int_equal(frame_arena_hold(&a, own, FRAME_ADOPT_MIN), 0);
		assert_int_equal(frame_decode(&a, seen.msg, seen.msg_len, &d, err), 0);
		size_t cap;
		assert_ptr_equal(frame_arena_take_spare(&a, &cap), own);
		assert_int_equal(cap, FRAME_ADOPT_MIN);
		assert_null(frame_arena_take_spare(&a, &cap));
		frame_arena_give_spare(&a, own, cap);
		frame_arena_free(&a);
		frame_reader_free(&r);
		free(seen.taken);
		free(seen.msg);
		free(bytes);
		free(tail);
	}
	/* nothing to attach */
	Byol__StepParams sp = BYOL__STEP_PARAMS__INIT;
	Byol__Envelope e = BYOL__ENVELOPE__INIT;
	e.msg_case = BYOL__ENVELOPE__MSG_STEP_PARAMS;
	e.step_params = &sp;
	uint8_t head[64];
	size_t hl;
	char err[BYOL_ERR_LEN];
	assert_int_equal(frame_pack_attached(&e, &sp.online, head, sizeof(head), &hl, err),
			 -EMSGSIZE);
}

static void test_msg_name(void **state)
{
	(void)state;
	assert_string_equal(frame_msg_name(BYOL__ENVELOPE__MSG_NODE_RESULT), "node_result");
	assert_string_equal(frame_msg_name(BYOL__ENVELOPE__MSG_CLIENT_AUTH), "client_auth");
	assert_string_equal(frame_msg_name(0), "none");
	assert_string_equal(frame_msg_name(999), "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_byte_at_a_time),
		cmocka_unit_test(test_one_chunk_in_place),
		cmocka_unit_test(test_random_chunking_feed),
		cmocka_unit_test(test_random_chunking_prepare),
		cmocka_unit_test(test_oversized_refused_before_alloc),
		cmocka_unit_test(test_zero_length),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_field_zero),
		cmocka_unit_test(test_truncated_at_eof),
		cmocka_unit_test(test_callback_error_is_sticky),
		cmocka_unit_test(test_buffer_reuse),
		cmocka_unit_test(test_commit_checks),
		cmocka_unit_test(test_pack_decode_roundtrip),
		cmocka_unit_test(test_arena_grows_to_fit),
		cmocka_unit_test(test_arena_adopt),
		cmocka_unit_test(test_pack_head),
		cmocka_unit_test(test_pack_attached),
		cmocka_unit_test(test_msg_name),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
