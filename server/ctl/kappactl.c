/*
 * kappactl.c - main of kappactl, the command-line client of kappad: global
 * options, then dispatch to the verbs in cmd_*.c, help (help.h) and the
 * version. No logic here.
 */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "help.h"

/* A verb name and its function. */
struct verb {
	const char *name;                                     /* first word */
	int (*run)(struct kp_ctl_ctx *ctx, int argc, char **argv); /* the verb */
};

static const struct verb verbs[] = {
	{ "ping", kp_ctl_cmd_ping },
	{ "topic", kp_ctl_cmd_topic },
	{ "produce", kp_ctl_cmd_produce },
	{ "consume", kp_ctl_cmd_consume },
	{ "group", kp_ctl_cmd_group },
	{ "proc", kp_ctl_cmd_proc },
	{ "view", kp_ctl_cmd_view },
	{ "run", kp_ctl_cmd_run },
	{ "top", kp_ctl_cmd_top },
};

/*
 * When arg is the global option name ("--name V" or "--name=V"): stores
 * V in *value, moves *a past it and returns true (*a = -1 when V is
 * missing). Otherwise returns false.
 */
static bool global_opt(const char *arg, const char *name, const char **value,
		       int argc, char **argv, int *a)
{
	size_t n = strlen(name);

	if (strncmp(arg, name, n) != 0)
		return false;
	if (arg[n] == '=') {
		*value = arg + n + 1;
	} else if (arg[n] == '\0' && *a + 1 < argc) {
		*value = argv[++*a];
	} else {
		*a = -1;
	}
	return true;
}

int main(int argc, char **argv)
{
	struct kp_ctl_ctx ctx = { .addr = getenv("KAPPA_ADDR"), .in = stdin,
				  .out = stdout, .err = stderr };
	size_t i;
	int a = 1;

	if (ctx.addr == NULL || ctx.addr[0] == '\0')
		ctx.addr = "127.0.0.1:7070";
	signal(SIGPIPE, SIG_IGN);   /* a closed TLS connection is an error */
	while (a < argc && (global_opt(argv[a], "--addr", &ctx.addr, argc, argv,
				       &a) ||
			    global_opt(argv[a], "--token-file", &ctx.token_file,
				       argc, argv, &a) ||
			    global_opt(argv[a], "--tls-ca", &ctx.tls_ca, argc,
				       argv, &a) ||
			    global_opt(argv[a], "--tls-cert", &ctx.tls_cert,
				       argc, argv, &a) ||
			    global_opt(argv[a], "--tls-key", &ctx.tls_key, argc,
				       argv, &a))) {
		if (a < 0)
			return kp_ctl_usage(&ctx, "--addr HOST:PORT, --token-file FILE, --tls-ca FILE, --tls-cert FILE, --tls-key FILE");
		a++;
	}
	if (a >= argc)
		return kp_ctl_usage(&ctx, "kappactl [--addr HOST:PORT] VERB ...");
	if (strcmp(argv[a], "--version") == 0 ||
	    strcmp(argv[a], "version") == 0) {
		printf("kappactl %s\n", KP_VERSION_STRING);
		return KP_CTL_EXIT_OK;
	}
	if (strcmp(argv[a], "help") == 0 || strcmp(argv[a], "--help") == 0 ||
	    strcmp(argv[a], "-h") == 0)
		return kp_ctl_help_run(stdout, stderr, argc - a - 1, argv + a + 1);
	if (kp_ctl_help_asked(argc - a - 1, argv + a + 1))
		return kp_ctl_help_for_verb(stdout, stderr, argc - a, argv + a);
	for (i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
		int rc;

		if (strcmp(argv[a], verbs[i].name) != 0)
			continue;
		rc = verbs[i].run(&ctx, argc - a - 1, argv + a + 1);
		/* Output that could not be written is a failure too. */
		if ((fflush(stdout) != 0 || ferror(stdout)) && rc == 0) {
			fprintf(stderr, "kappactl: writing output failed\n");
			rc = KP_CTL_EXIT_FAIL;
		}
		return rc;
	}
	return kp_ctl_usage(&ctx, "unknown verb '%s'", argv[a]);
}
