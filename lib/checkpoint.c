#include "byol/checkpoint.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "byol/error.h"
#include "byol/safetensors.h"

#define FORMAT "byold-checkpoint-1"

typedef struct {
	const char *prefix;
	const param_layout *L;
	int upto;               /* tensors [0, upto) of L */
	float *buf;
} section;

static int sections_of(const model *m, const train_state *st, section *s)
{
	int n = 0, n_target = 0;
	while (n_target < m->L.n && m->L.t[n_target].offset < m->n_target)
		n_target++;
	s[n++] = (section){"online.", &m->L, m->L.n, st->online};
	if (st->target)
		s[n++] = (section){"target.", &m->L, n_target, st->target};
	s[n++] = (section){"optim.m.", &m->L, m->L.n, st->m};
	if (st->v)
		s[n++] = (section){"optim.v.", &m->L, m->L.n, st->v};
	if (m->bn_layout.n)
		s[n++] = (section){"bn.", &m->bn_layout, m->bn_layout.n, st->bn_running};
	return n;
}

static int count_tensors(const section *s, int ns)
{
	int n = 0;
	for (int i = 0; i < ns; i++)
		n += s[i].upto;
	return n;
}

static int write_sections(const char *path, const section *s, int ns, const st_meta *meta,
			  int nmeta, char *sha, char *err)
{
	int nt = count_tensors(s, ns);
	st_tensor *t = calloc((size_t)nt, sizeof(*t));
	char (*names)[PARAM_NAME_LEN + 16] = calloc((size_t)nt, sizeof(*names));
	if (!t || !names) {
		free(t);
		free(names);
		return byol_err(err, -ENOMEM, "%s: out of memory", path);
	}
	int k = 0;
	for (int i = 0; i < ns; i++)
		for (int j = 0; j < s[i].upto; j++, k++) {
			const param_tensor *p = &s[i].L->t[j];
			snprintf(names[k], sizeof(names[k]), "%s%s", s[i].prefix, p->name);
			t[k].name = names[k];
			t[k].data = s[i].buf + p->offset;
			t[k].ndim = p->ndim;
			for (int d = 0; d < p->ndim; d++)
				t[k].shape[d] = p->shape[d];
		}
	int r = safetensors_write(path, t, nt, meta, nmeta, sha, err);
	free(t);
	free(names);
	return r;
}

int checkpoint_save(const char *path, const model *m, const train_state *st, char *sha256_hex,
		    char *err)
{
	section s[5];
	int ns = sections_of(m, st, s);
	char step[32], hash[17];
	snprintf(step, sizeof(step), "%ld", st->step);
	config_hash(&m->cfg, hash);
	char *json = config_to_json(&m->cfg);
	if (!json)
		return byol_err(err, -ENOMEM, "%s: out of memory", path);
	st_meta meta[] = {
		{"format", FORMAT},
		{"step", step},
		{"config_hash", hash},
		{"config", json},
		{"method", config_method_name(m->cfg.method)},
	};
	int r = write_sections(path, s, ns, meta, (int)(sizeof(meta) / sizeof(meta[0])), sha256_hex,
			       err);
	free(json);
	return r;
}

int checkpoint_load(const char *path, const model *m, train_state *st, char *err)
{
	st_file f;
	int r = safetensors_read(&f, path, err);
	if (r < 0)
		return r;
	const char *fmt = safetensors_meta(&f, "format");
	const char *hash = safetensors_meta(&f, "config_hash");
	const char *step = safetensors_meta(&f, "step");
	char want[17];
	config_hash(&m->cfg, want);
	if (!fmt || strcmp(fmt, FORMAT) != 0) {
		r = byol_err(err, -EINVAL, "%s: not a byold checkpoint (format %s)", path,
			     fmt ? fmt : "missing");
		goto out;
	}
	if (!hash || strcmp(hash, want) != 0) {
		r = byol_err(err, -EINVAL, "%s: config hash %s does not match this run's %s", path,
			     hash ? hash : "missing", want);
		goto out;
	}
	char *end = NULL;
	long stepv = step ? strtol(step, &end, 10) : -1;
	if (!step || *end || stepv < 0) {
		r = byol_err(err, -EINVAL, "%s: bad step '%s' in metadata", path, step ? step : "");
		goto out;
	}
	section s[5];
	int ns = sections_of(m, st, s);
	/* check everything before copying anything */
	for (int pass = 0; pass < 2; pass++)
		for (int i = 0; i < ns; i++)
			for (int j = 0; j < s[i].upto; j++) {
				const param_tensor *p = &s[i].L->t[j];
				char name[PARAM_NAME_LEN + 16];
				snprintf(name, sizeof(name), "%s%s", s[i].prefix, p->name);
				const st_entry *e = safetensors_find(&f, name);
				if (!e || e->count != p->count) {
					r = byol_err(err, -EINVAL, "%s: tensor %s %s", path, name,
						     e ? "has the wrong size" : "is missing");
					goto out;
				}
				if (pass == 1)
					memcpy(s[i].buf + p->offset, e->data, p->count * sizeof(float));
			}
	st->step = stepv;
	r = 0;
out:
	safetensors_free(&f);
	return r;
}

int checkpoint_export_encoder(const char *path, const model *m, const train_state *st,
			      char *err)
{
	int n_enc = 0;
	while (n_enc < m->L.n && strncmp(m->L.t[n_enc].name, "encoder.", 8) == 0)
		n_enc++;
	int n_bn = 0;
	while (n_bn < m->bn_layout.n && strncmp(m->bn_layout.t[n_bn].name, "encoder.", 8) == 0)
		n_bn++;
	section s[2] = {
		{"", &m->L, n_enc, st->online},
		{"", &m->bn_layout, n_bn, st->bn_running},
	};
	char step[32];
	snprintf(step, sizeof(step), "%ld", st->step);
	char *json = config_to_json(&m->cfg);
	if (!json)
		return byol_err(err, -ENOMEM, "%s: out of memory", path);
	st_meta meta[] = {{"format", "byold-encoder-1"}, {"step", step}, {"config", json}};
	int r = write_sections(path, s, n_bn ? 2 : 1, meta, 3, NULL, err);
	free(json);
	return r;
}
