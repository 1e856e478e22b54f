/*
 * fuzz_frame.c — libFuzzer target for the wire framing (lib/frame.c): the
 * frame_reader cutting a byte stream into frames, and frame_decode unpacking
 * each frame's Envelope through the arena.
 *
 * Input: 4 control bytes, then the stream.
 *   [0] bits 0-1: the reader's maximum: 0 1 MiB, 1 16 + 16 * [1], 2 4096,
 *       3 65536 + 256 * [1];
 *       bits 2-7: 0x31 or 0x33: put a large StepParams frame first (its
 *       `online` tensor made of the input, 64 to 68 KiB: a decoded allocation
 *       one can adopt); 0x32 or 0x33: put a large frame of raw input bytes
 *       (32 to 36 KiB: one that frame_reader_prepare reads in place) first.
 *       (Rare values on purpose: most inputs stay small and fast.)
 *   [2], [3] seed of the chunk sizes
 *
 * The stream goes through three readers: one frame_reader_feed of all of it;
 * feeds of pseudo-random chunks (1 to 16 bytes mostly, sometimes up to 64 KiB;
 * up to 2 KiB with the large frames); and frame_reader_prepare/commit with
 * reads of pseudo-random sizes, as a socket would give them. All three must
 * deliver the stream's frames (each one's bytes are compared with the
 * stream's), the same ones, end with the same code, and a dead reader must
 * stay dead.
 *
 * Each frame is decoded with one arena reused across frames. A decoded
 * Envelope must have every `bytes` field 16-byte aligned; packed again with
 * frame_encode it must decode and pack to the same bytes; frame_pack into one
 * byte less must say -ENOSPC; for each bytes field of the message,
 * frame_pack_head plus the field's contents must be a frame that decodes to the
 * same message; a large tensor may be adopted (frame_arena_adopt) once, a
 * small field never. Found this way: frames with a field numbered 0 (see
 * fuzz/README.md).
 */
#include <errno.h>
#include <string.h>

#include "byol/error.h"
#include "byol/frame.h"
#include "fuzz.h"

#define CONTROL 4

/* ---- frames as delivered -------------------------------------------------- */

/* The frames a reader delivered: each must be the next frame of the stream,
 * byte for byte, wherever the reader hands it from. */
typedef struct {
	const uint8_t *stream;
	size_t stream_len;
	size_t next;            /* stream offset of the next frame's header */
	size_t n, cap;
	size_t *len;
} frame_log;

static void log_add(frame_log *l, const uint8_t *frame, size_t len)
{
	size_t off = l->next + FRAME_HEADER;
	FUZZ_CHECK(len >= 1, "empty frame delivered");
	FUZZ_CHECK(off <= l->stream_len && len <= l->stream_len - off,
		   "frame %zu of %zu bytes beyond the stream's %zu", l->n, len, l->stream_len);
	FUZZ_CHECK(memcmp(frame, l->stream + off, len) == 0,
		   "frame %zu (%zu bytes at %zu) differs from the stream", l->n, len, off);
	l->next = off + len;
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 64;
		l->len = realloc(l->len, l->cap * sizeof(*l->len));
		FUZZ_CHECK(l->len, "out of memory");
	}
	l->len[l->n++] = len;
}

static void log_free(frame_log *l)
{
	free(l->len);
	memset(l, 0, sizeof(*l));
}

static int on_frame(void *ud, const uint8_t *frame, size_t len, char *err)
{
	log_add(ud, frame, len);
	return 0;
}

static void log_compare(const frame_log *a, const frame_log *b, const char *how)
{
	FUZZ_CHECK(a->n == b->n, "%s: %zu frames, one feed gave %zu", how, b->n, a->n);
	for (size_t i = 0; i < a->n; i++)
		FUZZ_CHECK(a->len[i] == b->len[i], "%s: frame %zu of %zu bytes, one feed gave %zu",
			   how, i, b->len[i], a->len[i]);
}

/* ---- decoded Envelopes ---------------------------------------------------- */

/* Every bytes field in m and its submessages: 16-byte aligned. */
static void check_aligned(const ProtobufCMessage *m, int depth)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	FUZZ_CHECK(depth < 64, "messages nested %d deep", depth);
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const char *member = (const char *)m + f->offset;
		if (f->type != PROTOBUF_C_TYPE_BYTES && f->type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
			uint32_t which;
			memcpy(&which, (const char *)m + f->quantifier_offset, sizeof(which));
			if (which != f->id)
				continue;
		}
		size_t n = 1;
		const void *items = member;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			memcpy(&n, (const char *)m + f->quantifier_offset, sizeof(n));
			memcpy(&items, member, sizeof(items));
		}
		for (size_t k = 0; k < n; k++) {
			if (f->type == PROTOBUF_C_TYPE_BYTES) {
				const ProtobufCBinaryData *b = (const ProtobufCBinaryData *)items + k;
				FUZZ_CHECK(!b->len || ((uintptr_t)b->data & 15) == 0,
					   "%s.%s: bytes at %p not 16-byte aligned", d->name,
					   f->name, (void *)b->data);
			} else {
				const ProtobufCMessage *sub = ((const ProtobufCMessage *const *)items)[k];
				if (sub)
					check_aligned(sub, depth + 1);
			}
		}
	}
}

/* Packs e, checking frame_pack's refusal of a buffer one byte short. */
static uint8_t *encode(const Byol__Envelope *e, size_t *len)
{
	char err[BYOL_ERR_LEN];
	uint8_t *buf;
	int rc = frame_encode(e, &buf, len, err);
	FUZZ_CHECK(rc == 0, "a decoded %s does not encode: %s", frame_msg_name(e->msg_case),
		   err);
	FUZZ_CHECK(*len == frame_size(e), "encoded %zu bytes, frame_size %zu", *len,
		   frame_size(e));
	size_t L = (size_t)buf[0] << 24 | (size_t)buf[1] << 16 | (size_t)buf[2] << 8 | buf[3];
	FUZZ_CHECK(L + FRAME_HEADER == *len, "length prefix %zu for %zu bytes", L, *len);
	size_t short_len;
	FUZZ_CHECK(frame_pack(e, buf, *len - 1, &short_len, err) == -ENOSPC,
		   "frame_pack into %zu of %zu bytes did not say ENOSPC", *len - 1, *len);
	return buf;
}

/* frame_pack_head for the bytes field f of e's message: head + contents must
 * decode and pack to the canonical frame. */
static void check_pack_head(Byol__Envelope *e, ProtobufCMessage *m,
			    const ProtobufCFieldDescriptor *f, const uint8_t *canon,
			    size_t canon_len, frame_arena *a)
{
	ProtobufCBinaryData *tail = (ProtobufCBinaryData *)((char *)m + f->offset);
	ProtobufCBinaryData saved = *tail;
	size_t cap = canon_len + 32, head_len, frame_len;
	uint8_t *head = malloc(cap + tail->len);
	char err[BYOL_ERR_LEN];
	FUZZ_CHECK(head, "out of memory");
	int rc = frame_pack_head(e, tail, f->id, head, cap, &head_len, &frame_len, err);
	FUZZ_CHECK(rc == 0, "frame_pack_head %s.%s: %s", m->descriptor->name, f->name, err);
	FUZZ_CHECK(tail->data == saved.data && tail->len == saved.len,
		   "frame_pack_head changed the tail");
	FUZZ_CHECK(frame_len == head_len + tail->len, "frame of %zu bytes: head %zu + tail %zu",
		   frame_len, head_len, tail->len);
	FUZZ_CHECK(frame_len == canon_len, "frame_pack_head frame of %zu bytes, canonical %zu",
		   frame_len, canon_len);
	if (tail->len)
		memcpy(head + head_len, tail->data, tail->len);
	Byol__Envelope *d;
	rc = frame_decode(a, head + FRAME_HEADER, frame_len - FRAME_HEADER, &d, err);
	FUZZ_CHECK(rc == 0, "frame_pack_head %s.%s: the frame does not decode: %s",
		   m->descriptor->name, f->name, err);
	size_t len;
	uint8_t *again = encode(d, &len);
	FUZZ_CHECK(len == canon_len && memcmp(again, canon, len) == 0,
		   "frame_pack_head %s.%s: decodes to another message", m->descriptor->name,
		   f->name);
	free(again);
	free(head);
}

static void check_envelope(Byol__Envelope *e, frame_arena *scratch)
{
	char err[BYOL_ERR_LEN];
	FUZZ_CHECK(e->msg_case != BYOL__ENVELOPE__MSG__NOT_SET, "decoded without a message");
	FUZZ_CHECK(frame_msg_name(e->msg_case) != NULL, "no name");
	check_aligned(&e->base, 0);

	size_t len1, len2;
	uint8_t *b1 = encode(e, &len1);
	Byol__Envelope *d;
	int rc = frame_decode(scratch, b1 + FRAME_HEADER, len1 - FRAME_HEADER, &d, err);
	FUZZ_CHECK(rc == 0, "a re-encoded %s does not decode: %s", frame_msg_name(e->msg_case),
		   err);
	uint8_t *b2 = encode(d, &len2);
	FUZZ_CHECK(len1 == len2 && memcmp(b1, b2, len1) == 0,
		   "%s: encode(decode(encode(x))) != encode(x)", frame_msg_name(e->msg_case));
	free(b2);

	/* the message's own bytes fields, sent as a tail (frame_pack_head packs the
	 * Envelope's message only: not for an Envelope that came with unknown
	 * fields of its own, which a sender never has) */
	const ProtobufCFieldDescriptor *ef =
		protobuf_c_message_descriptor_get_field(&byol__envelope__descriptor,
							(unsigned)e->msg_case);
	if (ef && ef->type == PROTOBUF_C_TYPE_MESSAGE && e->base.n_unknown_fields == 0) {
		ProtobufCMessage *m = *(ProtobufCMessage **)((char *)e + ef->offset);
		const ProtobufCMessageDescriptor *md = m->descriptor;
		for (unsigned i = 0; i < md->n_fields; i++) {
			const ProtobufCFieldDescriptor *f = &md->fields[i];
			if (f->type == PROTOBUF_C_TYPE_BYTES && f->label != PROTOBUF_C_LABEL_REPEATED &&
			    !(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
				check_pack_head(e, m, f, b1, len1, scratch);
		}
	}
	free(b1);
}

/* A large bytes field of the last decode may be adopted (the arena keeps at most
 * FRAME_ADOPT_MAX of them per decode), once; a small one never. */
static void check_adopt(Byol__Envelope *e, frame_arena *a)
{
	if (e->msg_case != BYOL__ENVELOPE__MSG_STEP_PARAMS)
		return;
	ProtobufCBinaryData *b = &e->step_params->online;
	void *p = frame_arena_adopt(a, b->data);
	if (b->len < FRAME_ADOPT_MIN) {
		FUZZ_CHECK(p == NULL, "a %zu-byte field adopted", b->len);
		return;
	}
	if (!p)
		return;
	FUZZ_CHECK(p == b->data, "adopt gave another pointer");
	FUZZ_CHECK(frame_arena_adopt(a, b->data) == NULL, "adopted twice");
	memset(p, 0, b->len);   /* ours now: ASan sees any later use by the arena */
	free(p);
	b->data = NULL;
	b->len = 0;
}

/* ---- the readers ----------------------------------------------------------- */

typedef struct {
	frame_log log;
	frame_arena arena, scratch;
	int decoded;
} whole_ctx;

static int on_whole_frame(void *ud, const uint8_t *frame, size_t len, char *err)
{
	whole_ctx *w = ud;
	log_add(&w->log, frame, len);
	Byol__Envelope *e;
	char derr[BYOL_ERR_LEN] = "";
	int rc = frame_decode(&w->arena, frame, len, &e, derr);
	if (rc == 0) {
		w->decoded++;
		check_envelope(e, &w->scratch);
		check_adopt(e, &w->arena);
	} else {
		FUZZ_CHECK(rc == -EBADMSG && e == NULL && derr[0], "decode: rc %d \"%s\"", rc,
			   derr);
	}
	return 0;
}

/* Mostly 1 to 16 bytes, sometimes up to 64 KiB; a long stream (the large
 * frames) in pieces up to 2 KiB, which still split every frame and header
 * somewhere without taking thousands of calls. */
static size_t chunk_size(uint32_t *seed, size_t stream_len)
{
	uint32_t r = fuzz_rand(seed);
	if ((r & 15) == 0)
		return 1 + (r >> 4) % 65536;
	return 1 + (r >> 4) % (stream_len > 8192 ? 2048 : 16);
}

/* Feeds in random chunks; returns the first error (0 if none). */
static int read_chunked(frame_reader *r, const uint8_t *s, size_t len, uint32_t seed,
			frame_log *log)
{
	char err[BYOL_ERR_LEN];
	for (size_t at = 0; at < len;) {
		size_t n = chunk_size(&seed, len);
		if (n > len - at)
			n = len - at;
		int rc = frame_reader_feed(r, s + at, n, on_frame, log, err);
		if (rc < 0)
			return rc;
		at += n;
	}
	return 0;
}

/* Reads as from a socket: prepare, copy a read's worth, commit. */
static int read_prepared(frame_reader *r, const uint8_t *s, size_t len, uint32_t seed,
			 frame_log *log)
{
	char err[BYOL_ERR_LEN];
	for (size_t at = 0; at < len;) {
		uint8_t *buf;
		size_t room;
		int rc = frame_reader_prepare(r, &buf, &room, err);
		if (rc < 0)
			return rc;
		FUZZ_CHECK(buf && room > 0, "prepare gave no room");
		size_t n = chunk_size(&seed, len);
		if (n > room)
			n = room;
		if (n > len - at)
			n = len - at;
		memcpy(buf, s + at, n);
		if ((rc = frame_reader_commit(r, n, on_frame, log, err)) < 0)
			return rc;
		at += n;
	}
	return 0;
}

/* ---- the stream ------------------------------------------------------------ */

/* Fills n bytes at dst with the src bytes repeated (zeros when there are none). */
static void fill_cycled(uint8_t *dst, size_t n, const uint8_t *src, size_t len)
{
	if (!len) {
		memset(dst, 0, n);
		return;
	}
	size_t have = len < n ? len : n;
	memcpy(dst, src, have);
	while (have < n) {
		size_t k = have < n - have ? have : n - have;
		memcpy(dst + have, dst, k);
		have += k;
	}
}

static void put_len(uint8_t *p, size_t L)
{
	p[0] = (uint8_t)(L >> 24);
	p[1] = (uint8_t)(L >> 16);
	p[2] = (uint8_t)(L >> 8);
	p[3] = (uint8_t)L;
}

/* The stream: the optional large frames, then the rest of the input (nrest
 * bytes after the control bytes). Malloc'd, exactly its length (ASan sees a
 * reader that reads past it). */
static uint8_t *make_stream(const uint8_t in[CONTROL], const uint8_t *rest, size_t nrest,
			    size_t *len)
{
	size_t at = 0;
	int big = in[0] >> 2;
	size_t big_tensor = big == 0x31 || big == 0x33 ? FRAME_ADOPT_MIN + 4 * (size_t)in[3] : 0;
	size_t big_raw = big == 0x32 || big == 0x33 ? FRAME_DIRECT_MIN + 16 * (size_t)in[2] : 0;
	uint8_t *tensor = NULL, *frame = NULL;
	size_t frame_len = 0;
	if (big_tensor) {
		char err[BYOL_ERR_LEN];
		tensor = malloc(big_tensor);
		FUZZ_CHECK(tensor, "out of memory");
		fill_cycled(tensor, big_tensor, rest, nrest);
		tensor[0] ^= in[1];
		Byol__StepParams sp = BYOL__STEP_PARAMS__INIT;
		Byol__Envelope e = BYOL__ENVELOPE__INIT;
		sp.run_id = in[1];
		sp.step = (uint64_t)in[2] << 32 | in[3];
		sp.online.data = tensor;
		sp.online.len = big_tensor;
		e.msg_case = BYOL__ENVELOPE__MSG_STEP_PARAMS;
		e.step_params = &sp;
		FUZZ_CHECK(frame_encode(&e, &frame, &frame_len, err) == 0, "%s", err);
	}
	size_t total = frame_len + (big_raw ? FRAME_HEADER + big_raw : 0) + nrest;
	uint8_t *s = malloc(total ? total : 1);
	FUZZ_CHECK(s, "out of memory");
	if (frame_len) {
		memcpy(s, frame, frame_len);
		at = frame_len;
	}
	if (big_raw) {
		put_len(s + at, big_raw);
		at += FRAME_HEADER;
		fill_cycled(s + at, big_raw, rest, nrest);
		at += big_raw;
	}
	memcpy(s + at, rest, nrest);
	*len = at + nrest;
	free(frame);
	free(tensor);
	return s;
}

static size_t max_len_of(const uint8_t *in)
{
	switch (in[0] & 3) {
	case 1:
		return 16 + 16 * (size_t)in[1];
	case 2:
		return 4096;
	case 3:
		return 65536 + 256 * (size_t)in[1];
	default:
		return (size_t)1 << 20;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t in[CONTROL] = { 0 };            /* missing control bytes are 0 */
	memcpy(in, data, size < CONTROL ? size : CONTROL);
	size_t len, max_len = max_len_of(in);
	uint8_t *s = make_stream(in, data + (size < CONTROL ? size : CONTROL),
				 size < CONTROL ? 0 : size - CONTROL, &len);
	uint32_t seed = (uint32_t)in[2] << 8 | in[3];
	char err[BYOL_ERR_LEN] = "", err2[BYOL_ERR_LEN] = "";

	whole_ctx w = { .log = { .stream = s, .stream_len = len } };
	frame_arena_init(&w.arena);
	frame_arena_init(&w.scratch);
	frame_reader ra, rb, rc;
	frame_reader_init(&ra, max_len);
	frame_reader_init(&rb, max_len);
	frame_reader_init(&rc, max_len);

	int code_a = frame_reader_feed(&ra, s, len, on_whole_frame, &w, err);
	FUZZ_CHECK(code_a == 0 || code_a == -EMSGSIZE || code_a == -EBADMSG, "feed: %d %s",
		   code_a, err);
	if (code_a) {
		int again = frame_reader_feed(&ra, s, 1, on_whole_frame, &w, err2);
		FUZZ_CHECK(again == code_a && strcmp(err, err2) == 0,
			   "a dead reader answered %d \"%s\" after %d \"%s\"", again, err2, code_a,
			   err);
		FUZZ_CHECK(frame_reader_finish(&ra, err2) == code_a, "finish of a dead reader");
		uint8_t *buf;
		size_t room;
		FUZZ_CHECK(frame_reader_prepare(&ra, &buf, &room, err2) == code_a && !buf,
			   "prepare of a dead reader");
	}
	FUZZ_CHECK(ra.frames == w.log.n, "frames %llu, delivered %zu",
		   (unsigned long long)ra.frames, w.log.n);

	frame_log lb = { .stream = s, .stream_len = len }, lc = lb;
	int code_b = read_chunked(&rb, s, len, seed, &lb);
	int code_c = read_prepared(&rc, s, len, seed * 2654435761u, &lc);
	FUZZ_CHECK(code_b == code_a, "chunked feed ended %d, one feed %d", code_b, code_a);
	FUZZ_CHECK(code_c == code_a, "prepare/commit ended %d, one feed %d", code_c, code_a);
	log_compare(&w.log, &lb, "chunked feed");
	log_compare(&w.log, &lc, "prepare/commit");
	int fin_a = frame_reader_finish(&ra, err);
	if (code_a)
		FUZZ_CHECK(fin_a == code_a, "finish %d after %d", fin_a, code_a);
	else
		FUZZ_CHECK(fin_a == 0 || fin_a == -EPROTO, "finish %d", fin_a);
	FUZZ_CHECK(frame_reader_finish(&rb, err) == fin_a, "finish differs (chunked)");
	FUZZ_CHECK(frame_reader_finish(&rc, err) == fin_a, "finish differs (prepare/commit)");

	frame_reader_free(&ra);
	frame_reader_free(&rb);
	frame_reader_free(&rc);
	frame_arena_free(&w.arena);
	frame_arena_free(&w.scratch);
	log_free(&w.log);
	log_free(&lb);
	log_free(&lc);
	free(s);
	return 0;
}
