/*
 * byolctl — the byold client: submit experiments, follow, query and compare runs.
 *
 * Exit status: 0 done; 1 the daemon refused, a run failed, or the experiment file
 * is invalid; 2 a usage error; 3 the daemon cannot be reached (the message names
 * the address).
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "byol/auth.h"
#include "byol/error.h"
#include "byol/inifile.h"
#include "cli.h"

static const cli_command *const commands[] = {
	&cmd_submit,
	&cmd_status,
	&cmd_list,
	&cmd_history,
	&cmd_compare,
	&cmd_plot,
	&cmd_report,
	&cmd_export,
	&cmd_watch,
	&cmd_show,
	&cmd_cancel,
	&cmd_resume,
	&cmd_workers,
};
#define N_COMMANDS ((int)(sizeof(commands) / sizeof(commands[0])))

static void usage(FILE *f)
{
	fprintf(f, "usage: byolctl [--coordinator HOST:PORT | --socket PATH] [--token-file FILE]\n"
		   "               [--json] COMMAND [ARGS]\n\ncommands:\n");
	for (int i = 0; i < N_COMMANDS; i++)
		fprintf(f, "  %-10s %s\n", commands[i]->name, commands[i]->summary);
	fprintf(f, "\n`byolctl COMMAND --help` describes a command.\n"
		   "The daemon, first found: --coordinator or --socket; $BYOLD_COORDINATOR or\n"
		   "$BYOLD_SOCKET; the config file's coordinator= or socket=; "
		   CLI_ACTIVATED_SOCKET "\n(byold.socket) or " CLI_DEFAULT_SOCKET " when it exists; TCP "
		   CLI_DEFAULT_TCP ".\n"
		   "Token: --token-file, else $BYOLD_TOKEN_FILE, else the config file's token_file=.\n"
		   "Config file: $BYOLCTL_CONFIG, else ~/.config/byold/byolctl.conf when it exists\n"
		   "(INI: coordinator = HOST:PORT, socket = PATH, token_file = FILE; relative\n"
		   "paths are taken from the file's directory).\n"
		   "Exit status: 0 ok, 1 refused or failed, 2 usage, 3 the daemon cannot be reached.\n");
}

/* ---- the config file ---- */

typedef struct {
	char dir[PATH_MAX];             /* the file's directory, for relative paths */
	char coordinator[256];
	char socket[PATH_MAX];
	char token_file[PATH_MAX];
} client_conf;

static int conf_section(void *user, const char *section)
{
	(void)user;
	return section[0] == '\0' || strcmp(section, "byolctl") == 0;
}

/* A path value: "~/" is $HOME, a relative path is the config file's directory's. */
static int conf_path(inifile *f, const client_conf *cf, char *out, size_t n, const char *v)
{
	const char *home = getenv("HOME");
	int len;
	if (strncmp(v, "~/", 2) == 0 && home)
		len = snprintf(out, n, "%s/%s", home, v + 2);
	else if (v[0] != '/')
		len = snprintf(out, n, "%s/%s", cf->dir, v);
	else
		len = snprintf(out, n, "%s", v);
	if (len < 0 || (size_t)len >= n)
		return inifile_fail(f, -ENAMETOOLONG, "the path '%s' is too long", v);
	return 1;
}

static int conf_value(inifile *f, void *user, const char *section, const char *key, char *value)
{
	client_conf *cf = user;
	(void)section;
	if (!value[0])
		return inifile_fail(f, -EINVAL, "%s: empty value", key);
	if (strcmp(key, "coordinator") == 0) {
		if (strlen(value) >= sizeof(cf->coordinator))
			return inifile_fail(f, -EINVAL, "coordinator: '%s' is too long", value);
		snprintf(cf->coordinator, sizeof(cf->coordinator), "%s", value);
		return 1;
	}
	if (strcmp(key, "socket") == 0)
		return conf_path(f, cf, cf->socket, sizeof(cf->socket), value);
	if (strcmp(key, "token_file") == 0)
		return conf_path(f, cf, cf->token_file, sizeof(cf->token_file), value);
	return inifile_fail(f, -EINVAL, "unknown key '%s' (the keys are coordinator, socket and "
			    "token_file)", key);
}

/* Reads $BYOLCTL_CONFIG (which must exist) or ~/.config/byold/byolctl.conf (if
 * it exists) into *cf. Returns 0 or a negative code with err. */
static int conf_load(client_conf *cf, char *err)
{
	char path[PATH_MAX];
	const char *env = getenv("BYOLCTL_CONFIG"), *home = getenv("HOME");
	memset(cf, 0, sizeof(*cf));
	if (env && env[0]) {
		snprintf(path, sizeof(path), "%s", env);
	} else {
		if (!home || !home[0])
			return 0;
		snprintf(path, sizeof(path), "%s/.config/byold/byolctl.conf", home);
		if (access(path, F_OK) < 0)
			return 0;
	}
	char *slash = strrchr(path, '/');
	if (slash && slash != path)
		snprintf(cf->dir, sizeof(cf->dir), "%.*s", (int)(slash - path), path);
	else
		snprintf(cf->dir, sizeof(cf->dir), "%s", slash ? "/" : ".");
	int rc = inifile_parse_file(path, conf_section, conf_value, cf, err);
	if (rc == 0 && cf->coordinator[0] && cf->socket[0])
		rc = byol_err(err, -EINVAL, "%s: give coordinator or socket, not both", path);
	return rc;
}

static const cli_command *find_command(const char *name)
{
	for (int i = 0; i < N_COMMANDS; i++)
		if (strcmp(commands[i]->name, name) == 0)
			return commands[i];
	return NULL;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"coordinator", required_argument, 0, 'C'},
		{"socket", required_argument, 0, 'S'},
		{"token-file", required_argument, 0, 'T'},
		{"json", no_argument, 0, 'j'},
		{"help", no_argument, 0, 'h'},
		{0, 0, 0, 0},
	};
	target t = {0};
	const char *token_file = NULL;
	int c;
	/* "+": options after the command belong to the command */
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 'C': t.tcp = optarg; break;
		case 'S': t.sock = optarg; break;
		case 'T': token_file = optarg; break;
		case 'j': t.json = 1; break;
		case 'h': usage(stdout); return EX_OK;
		default: usage(stderr); return EX_USAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return EX_USAGE;
	}
	const char *name = argv[optind];
	if (strcmp(name, "help") == 0) {
		const cli_command *hc = optind + 1 < argc ? find_command(argv[optind + 1]) : NULL;
		if (hc)
			cli_command_help(hc, stdout);
		else
			usage(stdout);
		return EX_OK;
	}
	const cli_command *cmd = find_command(name);
	if (!cmd) {
		fprintf(stderr, "byolctl: unknown command '%s'\n", name);
		usage(stderr);
		return EX_USAGE;
	}
	int sub_argc = argc - optind - 1;
	char **sub_argv = argv + optind + 1;
	for (int i = 0; i < sub_argc; i++)
		if (cli_is_help(sub_argv[i])) {
			cli_command_help(cmd, stdout);
			return EX_OK;
		}
	if (t.tcp && t.sock) {
		fprintf(stderr, "byolctl: give --coordinator or --socket, not both\n");
		return EX_USAGE;
	}
	/* flags, then the environment, then the config file, then the defaults */
	const char *env_tcp = getenv("BYOLD_COORDINATOR"), *env_sock = getenv("BYOLD_SOCKET");
	const char *env_token = getenv("BYOLD_TOKEN_FILE");
	if (!t.tcp && !t.sock && env_tcp && env_tcp[0] && env_sock && env_sock[0]) {
		fprintf(stderr, "byolctl: $BYOLD_COORDINATOR and $BYOLD_SOCKET are both set; "
				"give one (or --coordinator / --socket)\n");
		return EX_USAGE;
	}
	if (!t.tcp && !t.sock) {
		if (env_tcp && env_tcp[0])
			t.tcp = env_tcp;
		else if (env_sock && env_sock[0])
			t.sock = env_sock;
	}
	if (!token_file && env_token && env_token[0])
		token_file = env_token;
	char err[BYOL_ERR_LEN];
	static client_conf cf;
	if (conf_load(&cf, err) < 0) {
		fprintf(stderr, "byolctl: config: %s\n", err);
		return EX_USAGE;
	}
	if (!t.tcp && !t.sock) {
		struct stat sb;
		if (cf.coordinator[0])
			t.tcp = cf.coordinator;
		else if (cf.socket[0])
			t.sock = cf.socket;
		else if (stat(CLI_ACTIVATED_SOCKET, &sb) == 0)
			t.sock = CLI_ACTIVATED_SOCKET;
		else if (stat(CLI_DEFAULT_SOCKET, &sb) == 0)
			t.sock = CLI_DEFAULT_SOCKET;
		else
			t.tcp = CLI_DEFAULT_TCP;
	}
	if (!token_file && cf.token_file[0])
		token_file = cf.token_file;
	if (token_file && auth_token_load(token_file, &t.token, NULL, err) < 0) {
		fprintf(stderr, "byolctl: %s\n", err);
		return EX_USAGE;
	}
	const char *user = getenv("USER");
	snprintf(t.name, sizeof(t.name), "%.40s", user && user[0] ? user : "byolctl");
	int ex = cmd->run(&t, sub_argc, sub_argv);
	auth_token_free(t.token);
	return ex;
}
