/*
 * gen_frames.c — the seed inputs of fuzz_frame: one frame per Envelope message
 * generated from the protobuf descriptors with every field set, real
 * handshake, step and setup exchanges, the large-frame control bits, and edge
 * cases, each packed by frame_encode (see gen_corpus.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "byol/config.h"
#include "byol/error.h"
#include "byol/frame.h"
#include "gen_corpus.h"

/* Every allocation of a generated message, freed at the end. */
static void **owned;
static size_t n_owned;

static void *own(size_t n, size_t size)
{
	void *p = xcalloc(n, size);
	owned = realloc(owned, (n_owned + 1) * sizeof(*owned));
	if (!owned)
		die("out of memory");
	owned[n_owned++] = p;
	return p;
}

static void free_owned(void)
{
	for (size_t i = 0; i < n_owned; i++)
		free(owned[i]);
	free(owned);
	owned = NULL;
	n_owned = 0;
}

static size_t element_size(const ProtobufCFieldDescriptor *f)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_SINT32: case PROTOBUF_C_TYPE_SFIXED32:
	case PROTOBUF_C_TYPE_UINT32: case PROTOBUF_C_TYPE_FIXED32: case PROTOBUF_C_TYPE_ENUM:
		return 4;
	case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64:
		return 8;
	case PROTOBUF_C_TYPE_FLOAT:
		return sizeof(float);
	case PROTOBUF_C_TYPE_DOUBLE:
		return sizeof(double);
	case PROTOBUF_C_TYPE_BOOL:
		return sizeof(protobuf_c_boolean);
	case PROTOBUF_C_TYPE_STRING:
		return sizeof(char *);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(ProtobufCMessage *);
	}
	return 0;
}

static ProtobufCMessage *make_message(const ProtobufCMessageDescriptor *d, int depth,
				      unsigned salt);

/* One value of field f at p, plausible for its type: small numbers, short
 * printable strings, bytes that read as a few float32s. */
static void fill_value(const ProtobufCFieldDescriptor *f, void *p, int depth, unsigned salt)
{
	static const char *const words[] = { "byol", "worker-1", "running", "knn",
					     "model.predictor_norm=none" };
	uint32_t u = salt % 7 + 1;
	switch (f->type) {
	case PROTOBUF_C_TYPE_ENUM: {
		const ProtobufCEnumDescriptor *e = f->descriptor;
		int32_t v = e->n_values ? e->values[e->n_values - 1].value : 0;
		memcpy(p, &v, 4);
		break;
	}
	case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_SINT32: case PROTOBUF_C_TYPE_SFIXED32: {
		int32_t v = f->type == PROTOBUF_C_TYPE_INT32 ? (int32_t)u : -(int32_t)u;
		memcpy(p, &v, 4);
		break;
	}
	case PROTOBUF_C_TYPE_UINT32: case PROTOBUF_C_TYPE_FIXED32:
		memcpy(p, &u, 4);
		break;
	case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64: {
		uint64_t v = (uint64_t)u * 1000003u;
		memcpy(p, &v, 8);
		break;
	}
	case PROTOBUF_C_TYPE_FLOAT: {
		float v = 0.25f * (float)u;
		memcpy(p, &v, sizeof(v));
		break;
	}
	case PROTOBUF_C_TYPE_DOUBLE: {
		double v = 0.125 * u;
		memcpy(p, &v, sizeof(v));
		break;
	}
	case PROTOBUF_C_TYPE_BOOL: {
		protobuf_c_boolean v = 1;
		memcpy(p, &v, sizeof(v));
		break;
	}
	case PROTOBUF_C_TYPE_STRING: {
		const char *s = words[salt % 5];
		memcpy(p, &s, sizeof(s));
		break;
	}
	case PROTOBUF_C_TYPE_BYTES: {
		ProtobufCBinaryData b = { 4 * sizeof(float), own(4, sizeof(float)) };
		float *x = (float *)b.data;
		for (int i = 0; i < 4; i++)
			x[i] = (float)i - 1.5f;
		memcpy(p, &b, sizeof(b));
		break;
	}
	case PROTOBUF_C_TYPE_MESSAGE: {
		ProtobufCMessage *m = make_message(f->descriptor, depth + 1, salt + 1);
		memcpy(p, &m, sizeof(m));
		break;
	}
	}
}

/* A message of type d with every field set (the first member of each oneof;
 * repeated fields with two elements); submessages 3 deep at most. */
static ProtobufCMessage *make_message(const ProtobufCMessageDescriptor *d, int depth,
				      unsigned salt)
{
	ProtobufCMessage *m = own(1, d->sizeof_message);
	protobuf_c_message_init(d, m);
	if (depth >= 3)
		return m;
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		char *member = (char *)m + f->offset;
		if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
			uint32_t *which = (uint32_t *)((char *)m + f->quantifier_offset);
			if (*which)
				continue;
			*which = f->id;
		}
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = 2, size = element_size(f);
			char *items = own(n, size);
			for (size_t k = 0; k < n; k++)
				fill_value(f, items + k * size, depth, salt + (unsigned)(i + k));
			memcpy(member, &items, sizeof(items));
			memcpy((char *)m + f->quantifier_offset, &n, sizeof(n));
			continue;
		}
		if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset &&
		    !(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) && f->type != PROTOBUF_C_TYPE_MESSAGE &&
		    f->type != PROTOBUF_C_TYPE_STRING) {
			protobuf_c_boolean has = 1;
			memcpy((char *)m + f->quantifier_offset, &has, sizeof(has));
		}
		fill_value(f, member, depth, salt + i);
	}
	return m;
}

/* An Envelope holding message number id of the oneof, generated. */
static void envelope_of(Byol__Envelope *e, const ProtobufCFieldDescriptor *f)
{
	byol__envelope__init(e);
	e->msg_case = (Byol__Envelope__MsgCase)f->id;
	ProtobufCMessage *m = make_message(f->descriptor, 0, f->id);
	memcpy((char *)e + f->offset, &m, sizeof(m));
}

static void put_frame(buf *b, const Byol__Envelope *e)
{
	uint8_t *frame;
	size_t len;
	char err[BYOL_ERR_LEN];
	if (frame_encode(e, &frame, &len, err) < 0)
		die("frame_encode: %s", err);
	put(b, frame, len);
	free(frame);
}

/* A frame-target input: 4 control bytes (fuzz_frame.c), then stream. */
static void write_frame_input(const char *name, const uint8_t control[4], const buf *stream)
{
	buf b = { 0 };
	put(&b, control, 4);
	put(&b, stream->p, stream->len);
	write_file("frame", name, b.p, b.len);
	free(b.p);
}

void gen_frames(void)
{
	const uint8_t plain[4] = { 0 }, split[4] = { 0x02, 0, 0x5a, 0xa5 },
		      small_max[4] = { 0x01, 0x02, 0x11, 0x22 };
	buf all = { 0 };
	const ProtobufCMessageDescriptor *ed = &byol__envelope__descriptor;
	/* one file per message of the Envelope, every field set */
	for (unsigned i = 0; i < ed->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &ed->fields[i];
		if (!(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
			continue;
		Byol__Envelope e;
		envelope_of(&e, f);
		buf one = { 0 };
		put_frame(&one, &e);
		put_frame(&all, &e);
		char name[96];
		snprintf(name, sizeof(name), "msg_%s", f->name);
		write_frame_input(name, plain, &one);
		free(one.p);
		free_owned();
	}
	/* all of them in one stream, read with random chunks and with a small limit */
	write_frame_input("stream_all", split, &all);
	write_frame_input("stream_all_small_max", small_max, &all);

	/* the handshake as a worker sends and receives it */
	uint8_t nonce[32], mac[32];
	for (int i = 0; i < 32; i++) {
		nonce[i] = (uint8_t)(i * 37 + 11);
		mac[i] = (uint8_t)(255 - i * 5);
	}
	Byol__ServerHello hello = BYOL__SERVER_HELLO__INIT;
	Byol__ClientAuth auth = BYOL__CLIENT_AUTH__INIT;
	Byol__AuthResult res = BYOL__AUTH_RESULT__INIT;
	Byol__Envelope e = BYOL__ENVELOPE__INIT;
	buf hs = { 0 };
	hello.nonce = (ProtobufCBinaryData){ 32, nonce };
	hello.version = "0.1";
	hello.auth_required = 1;
	hello.protocol = 1;
	e.msg_case = BYOL__ENVELOPE__MSG_SERVER_HELLO;
	e.server_hello = &hello;
	put_frame(&hs, &e);
	auth.role = BYOL__ROLE__ROLE_WORKER;
	auth.name = "worker-1";
	auth.hmac = (ProtobufCBinaryData){ 32, mac };
	auth.client_nonce = (ProtobufCBinaryData){ 32, nonce };
	auth.version = "0.1";
	auth.protocol = 1;
	e.msg_case = BYOL__ENVELOPE__MSG_CLIENT_AUTH;
	e.client_auth = &auth;
	put_frame(&hs, &e);
	res.ok = 1;
	res.server_hmac = (ProtobufCBinaryData){ 32, mac };
	e.msg_case = BYOL__ENVELOPE__MSG_AUTH_RESULT;
	e.auth_result = &res;
	put_frame(&hs, &e);
	write_frame_input("handshake", split, &hs);

	/* a step: parameters out, a node's gradient back */
	float params[64];
	for (int i = 0; i < 64; i++)
		params[i] = (float)i / 8 - 4;
	Byol__StepParams sp = BYOL__STEP_PARAMS__INIT;
	Byol__NodeResult nr = BYOL__NODE_RESULT__INIT;
	buf step = { 0 };
	sp.run_id = 1;
	sp.step = 17;
	sp.online = (ProtobufCBinaryData){ sizeof(params), (uint8_t *)params };
	sp.target = (ProtobufCBinaryData){ sizeof(params), (uint8_t *)params };
	e.msg_case = BYOL__ENVELOPE__MSG_STEP_PARAMS;
	e.step_params = &sp;
	put_frame(&step, &e);
	nr.run_id = 1;
	nr.step = 17;
	nr.lo = 0;
	nr.hi = 2;
	nr.grad = (ProtobufCBinaryData){ sizeof(params), (uint8_t *)params };
	nr.bn_stats = (ProtobufCBinaryData){ 16, (uint8_t *)params };
	nr.loss = 3.5;
	nr.collapse = 0.9;
	nr.n = 128;
	e.msg_case = BYOL__ENVELOPE__MSG_NODE_RESULT;
	e.node_result = &nr;
	put_frame(&step, &e);
	write_frame_input("step", plain, &step);

	/* RunSetup carrying the canonical config */
	experiment_config c;
	config_defaults(&c);
	char *json = config_to_json(&c);
	if (!json)
		die("config_to_json");
	Byol__RunSetup rs = BYOL__RUN_SETUP__INIT;
	buf setup = { 0 };
	rs.run_id = 3;
	rs.config_json = json;
	rs.param_count = 1234567;
	rs.target_count = 1234567;
	rs.bn_count = 4096;
	rs.n_train = 60000;
	rs.total_steps = 2340;
	e.msg_case = BYOL__ENVELOPE__MSG_RUN_SETUP;
	e.run_setup = &rs;
	put_frame(&setup, &e);
	write_frame_input("run_setup", plain, &setup);
	free(json);

	/* the large frames the target makes itself (fuzz_frame.c, control byte 0) */
	const uint8_t big_tensor[4] = { 0x31 << 2, 1, 2, 3 }, big_raw[4] = { 0x32 << 2, 0, 4, 5 },
		      big_both[4] = { 0x33 << 2 | 3, 9, 8, 7 };
	write_frame_input("big_tensor", big_tensor, &step);
	write_frame_input("big_raw", big_raw, &hs);
	write_frame_input("big_both", big_both, &step);

	/* edge cases: a zero length; a length over the limit; a stream cut inside a
	 * frame; an Envelope with no message; one with an unknown message (a newer
	 * peer); garbage */
	buf edge = { 0 };
	put(&edge, step.p, step.len);
	put_u32be(&edge, 0);
	write_frame_input("zero_length", plain, &edge);
	edge.len = 0;
	put_u32be(&edge, 5000);
	put(&edge, step.p, step.len);
	write_frame_input("over_limit", (const uint8_t[4]){ 0x02, 0, 0, 0 }, &edge);
	edge.len = 0;
	put(&edge, step.p, step.len - 10);
	write_frame_input("cut", split, &edge);
	edge.len = 0;
	put_u32be(&edge, 2);
	put(&edge, "\x08\x01", 2);              /* field 1 as a varint: wrong wire type */
	put_u32be(&edge, 3);
	put(&edge, "\xa2\x06\x00", 3);          /* field 100, empty: unknown */
	put_u32be(&edge, 2);
	put(&edge, "\x2a\x00", 2);              /* an empty heartbeat: valid */
	write_frame_input("no_or_unknown_message", plain, &edge);
	edge.len = 0;
	for (int i = 0; i < 64; i++)
		put(&edge, (const uint8_t[]){ (uint8_t)(i * 73 + 5) }, 1);
	write_frame_input("garbage", split, &edge);
	free(edge.p);
	free(step.p);
	free(hs.p);
	free(setup.p);
	free(all.p);
}
