/*
 * frame.c — length-prefixed frames of Envelopes: the reader, pack, unpack through
 * a reusable arena. See include/byol/frame.h for the contract.
 */
#include "byol/frame.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "byol/error.h"

/* ---- reader ------------------------------------------------------------- */

static size_t clamp_max(size_t max_len)
{
	if (max_len == 0)
		return FRAME_MAX_DEFAULT;
	return max_len > FRAME_MAX_LIMIT ? FRAME_MAX_LIMIT : max_len;
}

void frame_reader_set_max(frame_reader *r, size_t max_len)
{
	r->max_len = clamp_max(max_len);
}

void frame_reader_init(frame_reader *r, size_t max_len)
{
	memset(r, 0, sizeof(*r));
	r->max_len = clamp_max(max_len);
	r->read_size = FRAME_READ_SIZE;
}

void frame_reader_free(frame_reader *r)
{
	size_t max_len = r->max_len;
	free(r->buf);
	free(r->stage);
	frame_reader_init(r, max_len);
}

/* Makes the reader dead with (code, message) and returns code. */
static int reader_fail(frame_reader *r, int code, const char *msg, char *err)
{
	r->error = code;
	snprintf(r->errmsg, sizeof(r->errmsg), "%s", msg);
	if (err)
		snprintf(err, BYOL_ERR_LEN, "%s", r->errmsg);
	return code;
}

static int reader_dead(const frame_reader *r, char *err)
{
	if (err)
		snprintf(err, BYOL_ERR_LEN, "%s", r->errmsg);
	return r->error;
}

/* The 4 header bytes are in: check L, make room for the body. Nothing is
 * allocated for a length that is refused. */
static int reader_start_body(frame_reader *r, char *err)
{
	char msg[BYOL_ERR_LEN];
	size_t L = (size_t)r->hdr[0] << 24 | (size_t)r->hdr[1] << 16 |
		   (size_t)r->hdr[2] << 8 | (size_t)r->hdr[3];
	r->attachment = (L & FRAME_ATTACHMENT) != 0;
	L &= ~(size_t)FRAME_ATTACHMENT;
	const char *kind = r->attachment ? "attachment frame" : "frame";
	if (L == 0) {
		snprintf(msg, sizeof(msg), "zero-length %s", kind);
		return reader_fail(r, -EBADMSG, msg, err);
	}
	if (L > r->max_len) {
		snprintf(msg, sizeof(msg), "%s length %zu exceeds the limit %zu", kind, L,
			 r->max_len);
		return reader_fail(r, -EMSGSIZE, msg, err);
	}
	r->need = L;
	r->have = 0;
	return 0;
}

/* Ensures the body buffer holds r->need bytes. Called only with nothing
 * buffered (have == 0), so the old contents need not survive: free + malloc
 * rather than realloc, which would copy. Grows at least 2x, capped at max_len. */
static int reader_reserve(frame_reader *r, char *err)
{
	if (r->cap >= r->need)
		return 0;
	size_t cap = r->cap * 2;
	if (cap < 4096)
		cap = 4096;
	if (cap < r->need)
		cap = r->need;
	if (cap > r->max_len)
		cap = r->max_len;
	free(r->buf);
	r->buf = malloc(cap);
	r->cap = r->buf ? cap : 0;
	if (!r->buf) {
		char msg[BYOL_ERR_LEN];
		snprintf(msg, sizeof(msg), "out of memory for a %zu-byte frame", r->need);
		return reader_fail(r, -ENOMEM, msg, err);
	}
	r->grows++;
	return 0;
}

/* Hands the finished frame at p to the callback and returns to header state. */
static int reader_deliver(frame_reader *r, const uint8_t *p, frame_cb cb, void *ud,
			  char *err)
{
	size_t L = r->need;
	r->need = 0;
	r->have = 0;
	r->hdr_have = 0;
	r->frames++;
	char cberr[BYOL_ERR_LEN] = "";
	int rc = cb(ud, p, L, cberr);
	if (rc < 0)
		return reader_fail(r, rc, cberr[0] ? cberr : "frame callback failed", err);
	return 0;
}

int frame_reader_feed(frame_reader *r, const void *data, size_t len, frame_cb cb,
		      void *ud, char *err)
{
	if (r->error)
		return reader_dead(r, err);
	const uint8_t *p = data;
	const uint8_t *end = p + len;
	int rc;
	r->bytes += len;
	while (p < end) {
		size_t left = (size_t)(end - p);
		if (r->need == 0) {
			/* in a header */
			if (r->hdr_have == 0 && left >= FRAME_HEADER) {
				memcpy(r->hdr, p, FRAME_HEADER);
				r->hdr_have = FRAME_HEADER;
				p += FRAME_HEADER;
			} else {
				r->hdr[r->hdr_have++] = *p++;
				if (r->hdr_have < FRAME_HEADER)
					continue;
			}
			if ((rc = reader_start_body(r, err)) < 0)
				return rc;
			left = (size_t)(end - p);
			if (left >= r->need) {
				/* the whole body is here: deliver it in place */
				const uint8_t *body = p;
				p += r->need;
				if ((rc = reader_deliver(r, body, cb, ud, err)) < 0)
					return rc;
				continue;
			}
			if ((rc = reader_reserve(r, err)) < 0)
				return rc;
			continue;
		}
		/* in a body that is being buffered */
		size_t take = r->need - r->have;
		if (take > left)
			take = left;
		memcpy(r->buf + r->have, p, take);
		r->have += take;
		p += take;
		if (r->have == r->need && (rc = reader_deliver(r, r->buf, cb, ud, err)) < 0)
			return rc;
	}
	return 0;
}

int frame_reader_prepare(frame_reader *r, uint8_t **buf, size_t *len, char *err)
{
	*buf = NULL;
	*len = 0;
	r->prepared = 0;
	if (r->error)
		return reader_dead(r, err);
	if (r->need && r->need - r->have >= FRAME_DIRECT_MIN) {
		/* the body buffer was reserved when the header completed */
		size_t n = r->need - r->have;
		*buf = r->buf + r->have;
		*len = n < r->read_size ? n : r->read_size;
		r->prepared = *len;
		r->prepared_direct = 1;
		return 0;
	}
	if (!r->stage) {
		r->stage = malloc(r->read_size);
		if (!r->stage)
			return reader_fail(r, -ENOMEM, "out of memory for the read buffer", err);
	}
	*buf = r->stage;
	*len = r->read_size;
	r->prepared = *len;
	r->prepared_direct = 0;
	return 0;
}

int frame_reader_commit(frame_reader *r, size_t n, frame_cb cb, void *ud, char *err)
{
	if (r->error)
		return reader_dead(r, err);
	size_t prepared = r->prepared;
	r->prepared = 0;
	if (n > prepared)
		return byol_err(err, -EINVAL, "frame_reader_commit: %zu bytes committed, "
				"%zu prepared", n, prepared);
	if (!r->prepared_direct)
		return frame_reader_feed(r, r->stage, n, cb, ud, err);
	r->bytes += n;
	r->have += n;
	if (r->have == r->need)
		return reader_deliver(r, r->buf, cb, ud, err);
	return 0;
}

int frame_reader_is_attachment(const frame_reader *r)
{
	return r->attachment;
}

int frame_reader_in_frame(const frame_reader *r)
{
	return r->need || r->hdr_have;
}

uint8_t *frame_reader_take_body(frame_reader *r, const uint8_t *frame, uint8_t *spare,
				size_t spare_cap, size_t *body_cap)
{
	if (!r->buf || frame != r->buf || r->cap < FRAME_ADOPT_MIN)
		return NULL;
	uint8_t *body = r->buf;
	*body_cap = r->cap;
	r->buf = spare;
	r->cap = spare ? spare_cap : 0;
	return body;
}

int frame_reader_finish(const frame_reader *r, char *err)
{
	if (r->error)
		return reader_dead(r, err);
	if (r->need)
		return byol_err(err, -EPROTO, "stream ended inside a frame: %zu of %zu bytes",
				r->have, r->need);
	if (r->hdr_have)
		return byol_err(err, -EPROTO, "stream ended inside a frame header: %u of %d "
				"bytes", r->hdr_have, FRAME_HEADER);
	return 0;
}

/* ---- encoding ----------------------------------------------------------- */

/* The 4-byte big-endian length prefix of a frame (with FRAME_ATTACHMENT or not). */
static void put_frame_header(uint8_t *p, uint32_t L)
{
	p[0] = (uint8_t)(L >> 24);
	p[1] = (uint8_t)(L >> 16);
	p[2] = (uint8_t)(L >> 8);
	p[3] = (uint8_t)L;
}

size_t frame_size(const Byol__Envelope *e)
{
	return FRAME_HEADER + byol__envelope__get_packed_size(e);
}

int frame_pack(const Byol__Envelope *e, void *buf, size_t cap, size_t *len, char *err)
{
	*len = 0;
	if (e->msg_case == BYOL__ENVELOPE__MSG__NOT_SET)
		return byol_err(err, -EINVAL, "cannot send an Envelope with no message set");
	size_t n = byol__envelope__get_packed_size(e);
	if (n > FRAME_MAX_LIMIT)
		return byol_err(err, -EMSGSIZE, "%s message of %zu bytes is too large for a "
				"frame", frame_msg_name(e->msg_case), n);
	if (cap < FRAME_HEADER + n)
		return byol_err(err, -ENOSPC, "frame of %zu bytes does not fit in %zu",
				FRAME_HEADER + n, cap);
	uint8_t *p = buf;
	put_frame_header(p, (uint32_t)n);
	size_t packed = byol__envelope__pack(e, p + FRAME_HEADER);
	if (packed != n)
		return byol_err(err, -EINVAL, "%s message packed to %zu bytes, expected %zu "
				"(modified while packing?)", frame_msg_name(e->msg_case),
				packed, n);
	*len = FRAME_HEADER + n;
	return 0;
}

int frame_encode(const Byol__Envelope *e, uint8_t **out, size_t *len, char *err)
{
	*out = NULL;
	*len = 0;
	if (e->msg_case == BYOL__ENVELOPE__MSG__NOT_SET)
		return byol_err(err, -EINVAL, "cannot send an Envelope with no message set");
	size_t n = frame_size(e);
	uint8_t *b = malloc(n);
	if (!b)
		return byol_err(err, -ENOMEM, "out of memory for a %zu-byte frame", n);
	int rc = frame_pack(e, b, n, len, err);
	if (rc < 0) {
		free(b);
		return rc;
	}
	*out = b;
	return 0;
}

/* Protobuf's base-128 varint of v into p; returns its length. */
static size_t put_varint(uint8_t *p, uint64_t v)
{
	size_t n = 0;
	while (v >= 0x80) {
		p[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (uint8_t)v;
	return n;
}

static size_t varint_size(uint64_t v)
{
	size_t n = 1;
	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

#define WIRE_LEN 2      /* protobuf wire type of length-delimited fields */

int frame_pack_head(const Byol__Envelope *e, ProtobufCBinaryData *tail, unsigned tail_field,
		    void *head, size_t cap, size_t *head_len, size_t *frame_len, char *err)
{
	*head_len = *frame_len = 0;
	if (e->msg_case == BYOL__ENVELOPE__MSG__NOT_SET)
		return byol_err(err, -EINVAL, "cannot send an Envelope with no message set");
	const ProtobufCFieldDescriptor *f =
		protobuf_c_message_descriptor_get_field(&byol__envelope__descriptor,
							(unsigned)e->msg_case);
	if (!f || f->type != PROTOBUF_C_TYPE_MESSAGE || !tail_field)
		return byol_err(err, -EINVAL, "frame_pack_head: %s is not a message",
				frame_msg_name(e->msg_case));
	const ProtobufCMessage *m = *(ProtobufCMessage *const *)((const char *)e + f->offset);
	ProtobufCBinaryData saved = *tail;
	tail->data = NULL;
	tail->len = 0;
	size_t body = protobuf_c_message_get_packed_size(m);
	size_t tail_key = varint_size((uint64_t)tail_field << 3 | WIRE_LEN);
	size_t inner = body + (saved.len ? tail_key + varint_size(saved.len) + saved.len : 0);
	size_t env_key = varint_size((uint64_t)f->id << 3 | WIRE_LEN);
	size_t n = env_key + varint_size(inner) + inner;
	int rc = 0;
	if (n > FRAME_MAX_LIMIT)
		rc = byol_err(err, -EMSGSIZE, "%s message of %zu bytes is too large for a frame",
			      frame_msg_name(e->msg_case), n);
	else if (cap < FRAME_HEADER + n - saved.len)
		rc = byol_err(err, -ENOSPC, "frame head of %zu bytes does not fit in %zu",
			      FRAME_HEADER + n - saved.len, cap);
	if (rc < 0) {
		*tail = saved;
		return rc;
	}
	uint8_t *p = head;
	put_frame_header(p, (uint32_t)n);
	size_t at = FRAME_HEADER;
	at += put_varint(p + at, (uint64_t)f->id << 3 | WIRE_LEN);
	at += put_varint(p + at, inner);
	size_t packed = protobuf_c_message_pack(m, p + at);
	*tail = saved;
	if (packed != body)
		return byol_err(err, -EINVAL, "%s message packed to %zu bytes, expected %zu "
				"(modified while packing?)", frame_msg_name(e->msg_case),
				packed, body);
	at += packed;
	if (saved.len) {
		at += put_varint(p + at, (uint64_t)tail_field << 3 | WIRE_LEN);
		at += put_varint(p + at, saved.len);
	}
	*head_len = at;
	*frame_len = FRAME_HEADER + n;
	return 0;
}

int frame_pack_attached(const Byol__Envelope *e, ProtobufCBinaryData *tail, void *head,
			size_t cap, size_t *head_len, char *err)
{
	*head_len = 0;
	if (!tail->len || tail->len > FRAME_MAX_LIMIT)
		return byol_err(err, -EMSGSIZE, "an attachment of %zu bytes (1 .. %zu)", tail->len,
				FRAME_MAX_LIMIT);
	Byol__Envelope with = *e;
	with.attachment = tail->len;
	ProtobufCBinaryData saved = *tail;
	tail->data = NULL;
	tail->len = 0;
	size_t n = 0;
	int rc = cap < FRAME_HEADER ? byol_err(err, -ENOSPC, "no room for a frame head")
				    : frame_pack(&with, head, cap - FRAME_HEADER, &n, err);
	*tail = saved;
	if (rc < 0)
		return rc;
	put_frame_header((uint8_t *)head + n, (uint32_t)saved.len | FRAME_ATTACHMENT);
	*head_len = n + FRAME_HEADER;
	return 0;
}

const char *frame_msg_name(int msg_case)
{
	if (msg_case == BYOL__ENVELOPE__MSG__NOT_SET)
		return "none";
	const ProtobufCFieldDescriptor *f =
		protobuf_c_message_descriptor_get_field(&byol__envelope__descriptor,
							(unsigned)msg_case);
	return f ? f->name : "unknown";
}

/* ---- decoding: the arena ------------------------------------------------ */

#define ARENA_ALIGN 16

/* A spilled allocation: this header, then the memory handed out. */
typedef struct spill {
	struct spill *next;
	size_t size;
	max_align_t pad[];       /* keeps the payload 16-byte aligned */
} spill;

/* A large allocation: a spare of the same size class, else a fresh malloc. */
static void *big_alloc(frame_arena *a, size_t size)
{
	void *p = NULL;
	size_t have = size;
	for (int i = 0; i < a->n_spare; i++)
		if (a->spare_size[i] >= size && a->spare_size[i] / 2 <= size) {
			p = a->spare[i];
			have = a->spare_size[i];
			a->n_spare--;
			a->spare[i] = a->spare[a->n_spare];
			a->spare_size[i] = a->spare_size[a->n_spare];
			break;
		}
	if (!p) {
		if (!(p = malloc(size)))
			return NULL;
		a->mallocs++;
	}
	a->big[a->n_big] = p;
	a->big_size[a->n_big++] = have;
	return p;
}

static void *arena_alloc(void *data, size_t size)
{
	frame_arena *a = data;
	size_t n = (size + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
	if (n < size)
		return NULL;
	if (size >= FRAME_ADOPT_MIN && a->n_big < FRAME_ADOPT_MAX)
		return big_alloc(a, size);
	if (a->cap - a->used >= n) {
		void *p = a->block + a->used;
		a->used += n;
		return p;
	}
	if (n > SIZE_MAX - sizeof(spill))
		return NULL;
	spill *s = malloc(sizeof(spill) + n);
	if (!s)
		return NULL;
	a->mallocs++;
	s->next = a->spill;
	s->size = n;
	a->spill = s;
	a->spilled += n;
	return s->pad;
}

/* Memory goes back all at once at the next decode; protobuf-c frees a partly
 * unpacked message on failure, and its scratch slabs, through this. */
static void arena_free(void *data, void *p)
{
	(void)data;
	(void)p;
}

void frame_arena_init(frame_arena *a)
{
	memset(a, 0, sizeof(*a));
	a->pa.alloc = arena_alloc;
	a->pa.free = arena_free;
	a->pa.allocator_data = a;
}

/* Drops everything handed out; remembers how much the last unpack needed. */
static void arena_reset(frame_arena *a)
{
	if (a->used + a->spilled > a->want)
		a->want = a->used + a->spilled;
	for (spill *s = a->spill, *next; s; s = next) {
		next = s->next;
		free(s);
	}
	a->spill = NULL;
	a->spilled = 0;
	a->used = 0;
	for (int i = 0; i < a->n_big; i++) {
		if (a->n_spare < FRAME_ADOPT_MAX) {
			a->spare[a->n_spare] = a->big[i];
			a->spare_size[a->n_spare++] = a->big_size[i];
		} else {
			free(a->big[i]);
		}
	}
	a->n_big = 0;
}

void *frame_arena_adopt(frame_arena *a, const void *p)
{
	for (int i = 0; p && i < a->n_big; i++)
		if (a->big[i] == p) {
			void *q = a->big[i];
			a->n_big--;
			a->big[i] = a->big[a->n_big];
			a->big_size[i] = a->big_size[a->n_big];
			return q;
		}
	return NULL;
}

int frame_arena_hold(frame_arena *a, void *p, size_t cap)
{
	if (a->n_big >= FRAME_ADOPT_MAX)
		return -ENOSPC;
	a->big[a->n_big] = p;
	a->big_size[a->n_big++] = cap;
	return 0;
}

void *frame_arena_copy(frame_arena *a, const void *p, size_t len)
{
	void *q = arena_alloc(a, len);
	if (q)
		memcpy(q, p, len);
	return q;
}

void *frame_arena_take_spare(frame_arena *a, size_t *cap)
{
	int best = -1;
	for (int i = 0; i < a->n_spare; i++)
		if (best < 0 || a->spare_size[i] > a->spare_size[best])
			best = i;
	*cap = 0;
	if (best < 0)
		return NULL;
	void *p = a->spare[best];
	*cap = a->spare_size[best];
	a->n_spare--;
	a->spare[best] = a->spare[a->n_spare];
	a->spare_size[best] = a->spare_size[a->n_spare];
	return p;
}

void frame_arena_give_spare(frame_arena *a, void *p, size_t cap)
{
	if (!p)
		return;
	if (a->n_spare >= FRAME_ADOPT_MAX) {
		free(p);
		return;
	}
	a->spare[a->n_spare] = p;
	a->spare_size[a->n_spare++] = cap;
}

void frame_arena_free(frame_arena *a)
{
	arena_reset(a);
	for (int i = 0; i < a->n_spare; i++)
		free(a->spare[i]);
	free(a->block);
	uint64_t mallocs = a->mallocs;
	frame_arena_init(a);
	a->mallocs = mallocs;
}

/* 1 when m or a message inside it kept an unknown field numbered 0. Protocol
 * Buffers has no field 0, but protobuf-c refuses it only in a one-byte tag: an
 * overlong tag (0x82 0x00) unpacks as an unknown field, which packs back as the
 * one-byte tag 0x02 that nobody reads. */
static int has_field_zero(const ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	for (unsigned i = 0; i < m->n_unknown_fields; i++)
		if (m->unknown_fields[i].tag == 0)
			return 1;
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const char *member = (const char *)m + f->offset;
		if (f->type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
			uint32_t which;
			memcpy(&which, (const char *)m + f->quantifier_offset, sizeof(which));
			if (which != f->id)
				continue;
		}
		size_t n = 1;
		ProtobufCMessage *const *subs = (ProtobufCMessage *const *)member;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			memcpy(&n, (const char *)m + f->quantifier_offset, sizeof(n));
			subs = *(ProtobufCMessage *const *const *)member;
		}
		for (size_t k = 0; k < n; k++)
			if (subs[k] && has_field_zero(subs[k]))
				return 1;
	}
	return 0;
}

int frame_decode(frame_arena *a, const void *data, size_t len, Byol__Envelope **out,
		 char *err)
{
	*out = NULL;
	if (!a->pa.alloc)
		frame_arena_init(a);
	arena_reset(a);
	/* bytes fields are copied, so a frame needs about its own length (less its
	 * large bytes fields, which get their own malloc); struct overhead is small
	 * next to it except for many tiny submessages, which the spill list and
	 * `want` catch */
	size_t need = (len < FRAME_ADOPT_MIN ? len + len / 8 : FRAME_ADOPT_MIN) + 4096;
	if (need < a->want)
		need = a->want;
	if (a->cap < need) {
		need = (need + 65535) & ~(size_t)65535;
		free(a->block);
		a->block = malloc(need);
		a->cap = a->block ? need : 0;
		if (!a->block)
			return byol_err(err, -ENOMEM, "out of memory decoding a %zu-byte frame",
					len);
		a->mallocs++;
	}
	Byol__Envelope *e = byol__envelope__unpack(&a->pa, len, data);
	if (!e)
		return byol_err(err, a->cap ? -EBADMSG : -ENOMEM,
				"malformed Envelope in a %zu-byte frame (protobuf unpack "
				"failed)", len);
	if (e->msg_case == BYOL__ENVELOPE__MSG__NOT_SET) {
		if (e->base.n_unknown_fields)
			return byol_err(err, -EBADMSG, "Envelope in a %zu-byte frame holds an "
					"unknown message (field %u): a newer peer?", len,
					e->base.unknown_fields[0].tag);
		return byol_err(err, -EBADMSG, "Envelope in a %zu-byte frame holds no "
				"message", len);
	}
	if (has_field_zero(&e->base))
		return byol_err(err, -EBADMSG, "malformed Envelope in a %zu-byte frame (a field "
				"numbered 0)", len);
	*out = e;
	return 0;
}
