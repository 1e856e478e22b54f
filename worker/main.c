/*
 * byol-worker — computes shard gradients for a coordinator (--coordinator or
 * --socket; worker/net.c), or, with --local, runs a whole experiment in this
 * process.
 */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "byol/config.h"
#include "byol/error.h"
#include "byol/train.h"
#include "net.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: byol-worker --coordinator HOST:PORT | --socket PATH [--token-file FILE]\n"
		"                   [--threads N] [--name NAME] [--no-shm]\n"
		"       byol-worker --local EXPERIMENT.ini [--set section.key=value ...]\n"
		"                   [--threads N] [--checkpoint FILE | --eval FILE] [--quiet]\n"
		"\n"
		"  --coordinator H:P serve the byold coordinator at H:P (TCP); reconnects when\n"
		"                    it goes away; SIGTERM or SIGINT ends the worker\n"
		"  --socket PATH     the same over the coordinator's Unix socket; tensors then\n"
		"                    travel through shared memory when byold allows it\n"
		"  --no-shm          over --socket, send and take tensors through the socket\n"
		"  --token-file FILE the cluster token (mode 0600), when byold has one;\n"
		"                    default: $CREDENTIALS_DIRECTORY/token when present\n"
		"  --name NAME       this worker's name (default: HOST-PID)\n"
		"  --local FILE      run the experiment in this process (both halves of every\n"
		"                    step); progress on stderr, one JSON object on stdout\n"
		"  --set S.K=V       override one experiment key (repeatable)\n"
		"  --threads N       shards computed at once, one core each (default: all cores)\n"
		"  --checkpoint FILE write the final checkpoint (safetensors)\n"
		"  --eval FILE       do not train: evaluate the checkpoint FILE (written by a\n"
		"                    run of the same experiment) with kNN and the probe\n"
		"  --quiet           no progress lines\n"
		"  --help-config     list every experiment key with its default\n");
}

/* Under systemd, LoadCredential=token:/etc/byold/token puts the cluster token in
 * $CREDENTIALS_DIRECTORY/token: its path when it exists, else NULL. */
static const char *credential_token(void)
{
	static char path[4096];
	const char *dir = getenv("CREDENTIALS_DIRECTORY");
	if (!dir || !dir[0] || snprintf(path, sizeof(path), "%s/token", dir) >= (int)sizeof(path))
		return NULL;
	return access(path, F_OK) == 0 ? path : NULL;
}

static int print_report(const experiment_config *cfg, const train_report *r)
{
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return -1;
	cJSON_AddStringToObject(o, "name", cfg->name);
	cJSON_AddStringToObject(o, "method", config_method_name(cfg->method));
	if (r->probe_acc >= 0)
		cJSON_AddNumberToObject(o, "probe_acc", r->probe_acc);
	else
		cJSON_AddNullToObject(o, "probe_acc");
	if (r->knn_acc >= 0)
		cJSON_AddNumberToObject(o, "knn_acc", r->knn_acc);
	else
		cJSON_AddNullToObject(o, "knn_acc");
	cJSON_AddNumberToObject(o, "collapse", r->collapse);
	cJSON_AddNumberToObject(o, "first_epoch_collapse", r->first_epoch_collapse);
	cJSON_AddNumberToObject(o, "img_per_s", r->img_per_s);
	cJSON_AddNumberToObject(o, "steps", (double)r->steps);
	cJSON_AddNumberToObject(o, "final_loss", r->final_loss);
	cJSON_AddNumberToObject(o, "train_seconds", r->train_seconds);
	cJSON_AddNumberToObject(o, "eval_seconds", r->eval_seconds);
	char *s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (!s)
		return -1;
	printf("%s\n", s);
	free(s);
	return 0;
}

/* --local FILE (or --eval): exit status. */
static int run_local(const char *local, const char **sets, int nsets, const char *eval_path,
		     int quiet, const train_options *topt)
{
	char err[BYOL_ERR_LEN] = "";
	experiment_config cfg;
	config_defaults(&cfg);
	if (config_parse_file(&cfg, local, err) < 0) {
		fprintf(stderr, "byol-worker: %s\n", err);
		return 1;
	}
	for (int i = 0; i < nsets; i++)
		if (config_set(&cfg, sets[i], err) < 0) {
			fprintf(stderr, "byol-worker: --set %s: %s\n", sets[i], err);
			return 1;
		}
	if (config_validate(&cfg, err) < 0) {
		fprintf(stderr, "byol-worker: %s: %s\n", local, err);
		return 1;
	}
	if (cfg.n_sweep)
		fprintf(stderr, "byol-worker: %s has a [sweep] of %d runs; --local runs the first "
				"(submit it to byold to run the sweep)\n",
			local, config_sweep_count(&cfg));
	/* the first combination: the variant and the first value of every axis */
	if (config_sweep_get(&cfg, 0, &cfg, err) < 0) {
		fprintf(stderr, "byol-worker: %s: %s\n", local, err);
		return 1;
	}
	train_report rep;
	int rc = eval_path ? train_eval_checkpoint(&cfg, eval_path, topt->threads, &rep, err)
			   : train_local(&cfg, topt, quiet ? NULL : stderr, &rep, err);
	if (rc < 0) {
		fprintf(stderr, "byol-worker: %s\n", err);
		return 1;
	}
	return print_report(&cfg, &rep) < 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"local", required_argument, 0, 'l'},
		{"set", required_argument, 0, 's'},
		{"threads", required_argument, 0, 't'},
		{"checkpoint", required_argument, 0, 'c'},
		{"eval", required_argument, 0, 'e'},
		{"quiet", no_argument, 0, 'q'},
		{"help", no_argument, 0, 'h'},
		{"help-config", no_argument, 0, 'H'},
		{"coordinator", required_argument, 0, 'C'},
		{"socket", required_argument, 0, 'S'},
		{"token-file", required_argument, 0, 'T'},
		{"name", required_argument, 0, 'N'},
		{"no-shm", no_argument, 0, 'M'},
		{0, 0, 0, 0},
	};
	const char *local = NULL, *eval_path = NULL;
	worker_net_options nopt = {0};
	const char **sets = calloc((size_t)argc, sizeof(char *));
	int nsets = 0, threads = 0, quiet = 0;
	train_options topt = {0};
	int c, rc = 2;
	if (!sets) {
		fprintf(stderr, "byol-worker: out of memory\n");
		return 1;
	}
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'l': local = optarg; break;
		case 's': sets[nsets++] = optarg; break;
		case 't':
			threads = atoi(optarg);
			if (threads < 1 || threads > 256) {
				fprintf(stderr, "byol-worker: --threads %s: expected 1 to 256\n", optarg);
				goto out;
			}
			break;
		case 'c': topt.checkpoint_path = optarg; break;
		case 'e': eval_path = optarg; break;
		case 'q': quiet = 1; break;
		case 'h': usage(stdout); rc = 0; goto out;
		case 'H': config_print_help(stdout); rc = 0; goto out;
		case 'C': nopt.coordinator = optarg; break;
		case 'S': nopt.socket_path = optarg; break;
		case 'T': nopt.token_file = optarg; break;
		case 'N': nopt.name = optarg; break;
		case 'M': nopt.no_shm = 1; break;
		default: usage(stderr); goto out;
		}
	}
	int net = nopt.coordinator || nopt.socket_path || nopt.token_file || nopt.name ||
		  nopt.no_shm;
	if (optind != argc || (local ? net : !net) ||
	    (net && (nsets || topt.checkpoint_path || eval_path || quiet))) {
		usage(stderr);
		goto out;
	}
	if (net && !!nopt.coordinator == !!nopt.socket_path) {
		fprintf(stderr, "byol-worker: give one of --coordinator and --socket\n");
		goto out;
	}
	if (nopt.name && (!nopt.name[0] || strlen(nopt.name) > 63)) {
		fprintf(stderr, "byol-worker: --name: 1 to 63 characters\n");
		goto out;
	}
	if (!threads) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		threads = n > 0 ? (int)n : 1;
	}
	if (net) {
		free(sets);
		nopt.threads = threads;
		if (!nopt.token_file)
			nopt.token_file = credential_token();
		return worker_net_run(&nopt);
	}
	topt.threads = threads;
	rc = run_local(local, sets, nsets, eval_path, quiet, &topt);
out:
	free(sets);
	return rc;
}
