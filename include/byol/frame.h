/*
 * frame.h — the wire framing: cutting a byte stream into frames, packing and
 * unpacking Envelopes. Pure: no I/O, no event loop.
 *
 * A frame is a 4-byte big-endian length L (1 <= L <= the reader's maximum,
 * FRAME_MAX_DEFAULT unless configured), then L bytes of one serialized
 * byol.Envelope (proto/byol.proto). A length with its top bit set
 * (FRAME_ATTACHMENT) marks an attachment frame instead: L = the other 31 bits
 * raw bytes, the tensor that the Envelope before it announced
 * (Envelope.attachment; conn.c pairs the two). The reader checks L the same way
 * and says which kind it delivers (frame_reader_is_attachment).
 *
 * A frame_reader is fed arbitrary chunks of a stream (a byte at a time, many frames per chunk, any split) and hands each
 * complete frame to a callback. It checks a length against the maximum as soon
 * as the 4 header bytes are in, before it allocates anything, and refuses a
 * zero length. After any error the reader is dead: every further call returns
 * the same code and message, so the caller may report it wherever it notices.
 *
 * Memory: a reader owns one body buffer, allocated for the first frame that must
 * be buffered, grown (never shrunk) only when a longer frame arrives, up to the
 * maximum, and reused for every later frame: a stream of 8 MiB frames allocates
 * (and first-touches) 8 MiB once. A frame that lies whole inside one fed chunk is
 * handed to the callback in place, without a copy. For reads from a socket,
 * frame_reader_prepare/commit let the caller read straight into the space the
 * current frame still needs (in pieces of read_size bytes, 64 KiB by default:
 * faster on this machine than one large read), so a large frame is received
 * without any copy; small frames go through a read_size staging buffer.
 *
 * Decoding: frame_decode unpacks an Envelope with protobuf-c through a
 * frame_arena, a ProtobufCAllocator that carves every allocation of an unpack
 * (the message structs, strings, repeated arrays and the copies protobuf-c makes
 * of `bytes` fields) out of one reusable block, 16-byte aligned. The block is
 * sized from the frame length before unpacking (length + 1/8 + 4 KiB); an unpack
 * that still runs out spills into individual mallocs, which are freed at the next
 * decode, and the block then grows to fit, so a stream of like frames settles at
 * zero mallocs per frame. A decoded Envelope lives until the next frame_decode or
 * frame_arena_free on the same arena; never pass it to byol__envelope__free_unpacked.
 * Allocations of FRAME_ADOPT_MIN bytes and more (a tensor's bytes) get a malloc
 * of their own instead, which frame_arena_adopt hands over to the caller: a
 * receiver keeps a decoded tensor without copying it a second time. Those not
 * adopted are kept for the next decode, so a stream of like frames still
 * settles at zero mallocs per frame when nobody adopts.
 *
 * Encoding: frame_pack writes the length prefix and packs the Envelope straight
 * after it (protobuf_c_message_pack, no intermediate copy) into a caller-supplied
 * buffer of frame_size(e) bytes; frame_encode does the same into a malloc'd one.
 * frame_pack_head packs all of a frame but one `bytes` field's contents, which
 * the caller sends from where they lie (the field goes last: protobuf allows
 * fields in any order, and the receiver's unpack is the same).
 *
 * Codes: -EMSGSIZE a length over the maximum (or a message too large for a
 * 4-byte length); -EBADMSG a zero length or an Envelope that does not unpack;
 * -EPROTO a stream that ended inside a frame; -ENOMEM; -EINVAL bad arguments;
 * -ENOSPC a caller's buffer too small; a callback's own negative code.
 */
#ifndef BYOL_FRAME_H
#define BYOL_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "byol/error.h"
#include "proto/byol.pb-c.h"

#define FRAME_HEADER 4                       /* bytes of the length prefix */
#define FRAME_ATTACHMENT 0x80000000u         /* length bit: an attachment frame */
#define FRAME_MAX_DEFAULT ((size_t)256 << 20) /* 256 MiB */
#define FRAME_MAX_LIMIT ((size_t)INT32_MAX)   /* what 31 bits can say */
#define FRAME_READ_SIZE ((size_t)64 << 10)    /* default piece of a direct read */
#define FRAME_DIRECT_MIN ((size_t)32 << 10)   /* smallest rest read in place */
#define FRAME_ADOPT_MIN ((size_t)64 << 10)    /* decoded allocations one can adopt */
#define FRAME_ADOPT_MAX 8                     /* of them per decode; more spill */

/* Called once per complete frame with its L payload bytes (the Envelope, without
 * the length prefix). `frame` is valid only during the call (it points into the
 * fed chunk or the reader's buffer). Return 0 to go on; a negative code stops
 * the feed, kills the reader and is returned by the feed (the callback may write
 * a message into err, which the reader keeps). */
typedef int (*frame_cb)(void *ud, const uint8_t *frame, size_t len, char *err);

/* All fields are private except the read-only statistics at the end. */
typedef struct {
	size_t max_len;          /* largest accepted L */
	size_t read_size;        /* piece of a direct read (frame_reader_prepare) */
	uint8_t hdr[FRAME_HEADER];
	unsigned hdr_have;       /* header bytes seen of the current frame */
	size_t need;             /* L of the current frame; 0 while in its header */
	size_t have;             /* body bytes buffered of the current frame */
	uint8_t *buf;            /* (cap) body buffer */
	size_t cap;
	uint8_t *stage;          /* (read_size) staging buffer for prepare/commit */
	size_t prepared;         /* bytes handed out by the last prepare, 0 = none */
	int prepared_direct;     /* the last prepare pointed into buf */
	int error;               /* 0, or the code every call now returns */
	char errmsg[BYOL_ERR_LEN];
	/* statistics, read-only */
	uint64_t frames;         /* frames delivered */
	uint64_t bytes;          /* bytes consumed, headers included */
	unsigned grows;          /* body buffer allocations so far */
	int attachment;          /* the frame in progress (or being delivered) is one */
} frame_reader;

/* Initialises an empty reader accepting frames of 1..max_len bytes (0 means
 * FRAME_MAX_DEFAULT; larger than FRAME_MAX_LIMIT is clamped to it). Allocates
 * nothing; cannot fail. */
void frame_reader_init(frame_reader *r, size_t max_len);

/* Changes the limit (as frame_reader_init) for frames whose header has not been
 * read yet; the frame in progress keeps the limit it was checked against. */
void frame_reader_set_max(frame_reader *r, size_t max_len);

/* Frees the reader's buffers and leaves it as frame_reader_init left it (with
 * the same maximum). Harmless on a zeroed or already freed reader. */
void frame_reader_free(frame_reader *r);

/* Consumes len bytes of the stream, calling cb(ud, ...) for every frame they
 * complete, in order. Returns 0 when all bytes were consumed; else the error
 * (see the top: -EMSGSIZE "frame length 300000000 exceeds the limit 268435456",
 * -EBADMSG "zero-length frame", -ENOMEM, or the callback's code), after which
 * the reader is dead and returns that error from every call. The bytes are not
 * kept: only a frame split across chunks is copied into the reader's buffer. */
int frame_reader_feed(frame_reader *r, const void *data, size_t len, frame_cb cb,
		      void *ud, char *err);

/* Says where the next read from the stream should go: *buf and *len (at most
 * read_size) are either the rest of the current frame's body, when that is at
 * least FRAME_DIRECT_MIN bytes (no copy), or the reader's staging buffer. The
 * caller reads up to *len bytes there, then calls frame_reader_commit with the
 * count (or nothing, if the read gave no data). Returns 0, -ENOMEM, or the
 * reader's error. The reader owns the buffer. */
int frame_reader_prepare(frame_reader *r, uint8_t **buf, size_t *len, char *err);

/* Takes the n bytes just read into the space the last prepare handed out
 * (n <= that length; -EINVAL otherwise) and delivers the frames they complete,
 * exactly as frame_reader_feed would. */
int frame_reader_commit(frame_reader *r, size_t n, frame_cb cb, void *ud, char *err);

/* 1 when the frame being delivered (inside a frame_cb) is an attachment frame. */
int frame_reader_is_attachment(const frame_reader *r);

/* 1 when part of a frame (header or body) has been fed and the rest has not. */
int frame_reader_in_frame(const frame_reader *r);

/* Inside a frame_cb: when frame is the reader's own body buffer, hands that
 * buffer (malloc'd, *body_cap >= FRAME_ADOPT_MIN bytes) to the caller, who frees
 * it, and takes spare (spare_cap bytes, malloc'd, or NULL) as its new body
 * buffer; returns NULL and changes nothing when frame lies elsewhere (a chunk
 * fed in place, the staging buffer) or the buffer is under FRAME_ADOPT_MIN. */
uint8_t *frame_reader_take_body(frame_reader *r, const uint8_t *frame, uint8_t *spare,
				size_t spare_cap, size_t *body_cap);

/* The caller says the stream has ended. Returns 0 when it ended between frames;
 * -EPROTO with a message saying how much of which frame was missing ("stream
 * ended inside a frame: 1000 of 4096 bytes") when it ended inside one (header
 * or body); or the reader's error. Changes nothing. */
int frame_reader_finish(const frame_reader *r, char *err);

/* ---- encoding ---------------------------------------------------------- */

/* Bytes of the frame for e: FRAME_HEADER + its packed size. */
size_t frame_size(const Byol__Envelope *e);

/* Packs e as one frame (length prefix, then the Envelope) into buf, which holds
 * cap bytes. Sets *len to frame_size(e) and returns 0; -EINVAL (and writes
 * nothing) for an Envelope with no message set (it would pack to a zero-length
 * frame, which receivers refuse); -EMSGSIZE when the Envelope is over
 * FRAME_MAX_LIMIT; -ENOSPC when cap < frame_size(e). */
int frame_pack(const Byol__Envelope *e, void *buf, size_t cap, size_t *len, char *err);

/* Same into a new malloc'd buffer of *len bytes, which the caller owns and frees
 * with free(). On failure *out is NULL. */
int frame_encode(const Byol__Envelope *e, uint8_t **out, size_t *len, char *err);

/* The frame of e without the contents of `tail`, a bytes field (field number
 * tail_field) of e's message, which must be a direct member of e's oneof: packs
 * the length prefix, the Envelope and the message with tail moved last, up to
 * and including tail's tag and length, into head (cap bytes; FRAME_HEADER + the
 * packed size of e without tail + 32 always suffice). The frame is then head's
 * *head_len bytes followed by tail->len bytes of tail->data; *frame_len is the
 * whole. tail is left as it was. Codes as frame_pack. */
int frame_pack_head(const Byol__Envelope *e, ProtobufCBinaryData *tail, unsigned tail_field,
		    void *head, size_t cap, size_t *head_len, size_t *frame_len, char *err);

/* The same split as frame_pack_head, for a peer that takes attachment frames:
 * packs e with tail left empty and Envelope.attachment = tail->len as a whole
 * frame, then the 4-byte header of the attachment frame that carries tail's
 * contents, into head (cap bytes). The caller sends *head_len bytes followed by
 * tail->len bytes of tail->data; tail->len must be 1 .. FRAME_MAX_LIMIT. */
int frame_pack_attached(const Byol__Envelope *e, ProtobufCBinaryData *tail, void *head,
			size_t cap, size_t *head_len, char *err);

/* The name of an Envelope message case as in the .proto ("shard_result"), "none"
 * for MSG__NOT_SET and "unknown" for a number this build does not know. Static
 * storage. */
const char *frame_msg_name(int msg_case);

/* ---- decoding ---------------------------------------------------------- */

/* A reusable allocator for unpacking (see the top). All fields private except
 * the statistics. */
typedef struct {
	ProtobufCAllocator pa;   /* hands out memory from this arena */
	uint8_t *block;          /* (cap) */
	size_t cap, used;
	void *spill;             /* list of overflow allocations of this decode */
	size_t spilled;          /* bytes in them */
	void *big[FRAME_ADOPT_MAX]; /* this decode's large allocations, adoptable */
	size_t big_size[FRAME_ADOPT_MAX];
	int n_big;
	void *spare[FRAME_ADOPT_MAX]; /* earlier ones nobody adopted, for reuse */
	size_t spare_size[FRAME_ADOPT_MAX];
	int n_spare;
	size_t want;             /* block size the last decode showed is needed */
	/* statistics, read-only */
	uint64_t mallocs;        /* block (re)allocations plus spills, ever */
} frame_arena;

/* Initialises an empty arena; allocates nothing, cannot fail. */
void frame_arena_init(frame_arena *a);

/* Frees the arena's memory (and with it the last decoded Envelope); the arena
 * may be used again. Harmless on a zeroed or freed arena. */
void frame_arena_free(frame_arena *a);

/* Attachments (conn.c): frame_arena_hold makes p (malloc'd, cap bytes) one of
 * the arena's large allocations of the current decode, adoptable and recycled
 * like them (-ENOSPC when FRAME_ADOPT_MAX are held: p stays the caller's);
 * frame_arena_copy is arena memory holding a copy of len bytes at p (NULL when
 * out of memory); frame_arena_take_spare takes the largest recycled large
 * allocation out of the arena (NULL when none; its size in *cap) and
 * frame_arena_give_spare puts one back (frees it when the arena is full). */
int frame_arena_hold(frame_arena *a, void *p, size_t cap);
void *frame_arena_copy(frame_arena *a, const void *p, size_t len);
void *frame_arena_take_spare(frame_arena *a, size_t *cap);
void frame_arena_give_spare(frame_arena *a, void *p, size_t cap);

/* When p is a large allocation of the last decode (a bytes field of at least
 * FRAME_ADOPT_MIN bytes, as ProtobufCBinaryData.data), hands it to the caller:
 * it stays valid after the next decode and the caller frees it with free().
 * Returns p, or NULL (p stays the arena's: copy it). */
void *frame_arena_adopt(frame_arena *a, const void *p);

/* Unpacks the len bytes of one frame's payload (as given to a frame_cb) into an
 * Envelope allocated in the arena. Every earlier Envelope decoded with this arena
 * becomes invalid. Returns 0 and sets *out; -EBADMSG ("malformed Envelope in a
 * 120-byte frame") when protobuf-c refuses the bytes, no message is set in the
 * Envelope (an empty or unknown-field-only one) or any message in it holds a
 * field numbered 0 (invalid; protobuf-c lets an overlong tag of it through);
 * -ENOMEM. On failure *out is
 * NULL. Bytes fields point into the arena and are 16-byte aligned, so a float32
 * tensor can be read in place on a little-endian host. */
int frame_decode(frame_arena *a, const void *data, size_t len, Byol__Envelope **out,
		 char *err);

#endif
