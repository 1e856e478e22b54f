/*
 * byolctl — the byold client: submit experiments, follow, query and compare runs.
 *
 * Exit status: 0 done; 1 the daemon refused, a run failed, or the experiment file
 * is invalid; 2 a usage error; 3 the daemon cannot be reached (the message names
 * the address).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "byol/auth.h"
#include "byol/error.h"
#include "cli.h"

static const cli_command *const commands[] = {
	&cmd_submit,
	&cmd_status,
	&cmd_list,
};
#define N_COMMANDS ((int)(sizeof(commands) / sizeof(commands[0])))

static void usage(FILE *f)
{
	fprintf(f, "usage: byolctl [--coordinator HOST:PORT | --socket PATH] [--token-file FILE]\n"
		   "               [--json] COMMAND [ARGS]\n\ncommands:\n");
	for (int i = 0; i < N_COMMANDS; i++)
		fprintf(f, "  %-10s %s\n", commands[i]->name, commands[i]->summary);
	fprintf(f, "\n`byolctl COMMAND --help` describes a command.\n"
		   "The daemon: --coordinator or --socket, else $BYOLD_SOCKET, else\n"
		   CLI_DEFAULT_SOCKET " when it exists, else TCP " CLI_DEFAULT_TCP ".\n"
		   "Token: --token-file, else $BYOLD_TOKEN_FILE.\n"
		   "Exit status: 0 ok, 1 refused or failed, 2 usage, 3 the daemon cannot be reached.\n");
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
	if (!t.tcp && !t.sock) {
		struct stat sb;
		const char *env = getenv("BYOLD_SOCKET");
		if (env && env[0])
			t.sock = env;
		else if (stat(CLI_DEFAULT_SOCKET, &sb) == 0)
			t.sock = CLI_DEFAULT_SOCKET;
		else
			t.tcp = CLI_DEFAULT_TCP;
	}
	if (!token_file && getenv("BYOLD_TOKEN_FILE") && getenv("BYOLD_TOKEN_FILE")[0])
		token_file = getenv("BYOLD_TOKEN_FILE");
	char err[BYOL_ERR_LEN];
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
