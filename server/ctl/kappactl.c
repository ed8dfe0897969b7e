/*
 * kappactl.c - main of kappactl, the command-line client of kappad: global
 * options, then dispatch to the verbs in cmd_*.c. No logic here.
 */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"

static const char usage_text[] =
"usage: kappactl [--addr HOST:PORT] [--token-file FILE]\n"
"                [--tls-ca FILE] [--tls-cert FILE --tls-key FILE] VERB ...\n"
"\n"
"Talks to kappad (docs/PROTOCOL.md) at --addr, else $KAPPA_ADDR, else\n"
"127.0.0.1:7070, authenticating with the token in --token-file's first\n"
"line, else $KAPPA_TOKEN (a server with tokens configured needs one).\n"
"With --tls-ca (the CA the server's certificate chains to) it speaks TLS,\n"
"presenting --tls-cert/--tls-key when the server asks for a client\n"
"certificate. These options may also follow the verb. Results are JSON, one\n"
"object per line. Errors: one line \"kappactl: ...\" on stderr; exit status 1\n"
"for errors from the server or in the data, 2 for usage errors.\n"
"\n"
"  ping                              {\"ok\":true,\"version\":\"...\"}\n"
"\n"
"  topic create NAME [--partitions N] [--fsync always|interval|never]\n"
"               [--fsync-interval-ms N] [--retention-ms N] [--retention-bytes N]\n"
"               [--segment-bytes N] [--segment-ms N]\n"
"               [--cleanup delete|compact|compact,delete]\n"
"               [--delete-retention-ms N]\n"
"                                    the topic's description\n"
"  topic list                        one description per line\n"
"  topic describe NAME               the topic's description\n"
"  topic delete NAME                 {\"deleted\":\"NAME\"}\n"
"\n"
"  produce TOPIC [--key-field F] [--ts-field F] [--partition N]\n"
"      Reads JSON lines on stdin, each one record's value; empty lines are\n"
"      skipped, invalid ones reported (\"line N: invalid JSON: ...\", exit 1)\n"
"      while the others are still sent. --key-field: the key is member F of\n"
"      the value (a string as-is, other values as JSON text). --ts-field: ts\n"
"      from member F (epoch ms or RFC 3339). Without --partition the server\n"
"      routes by key. Prints {\"acked\":N}.\n"
"\n"
"  consume TOPIC [--partition N] [--from earliest|latest|OFFSET|@TIME]\n"
"                [--count N] [--follow] [--group G] [--all-versions]\n"
"      Prints {\"topic\",\"partition\",\"offset\",\"ts\",\"key\",\"value\"} per\n"
"      record (key: string, \"base64:...\" when not UTF-8, or null), plus\n"
"      \"provenance\":{\"proc\",\"version\",\"topic\",\"partition\",\"offset\"}\n"
"      for records a processor wrote. Reads all partitions unless\n"
"      --partition; stops at the end of the log unless --follow (then until\n"
"      SIGINT/SIGTERM, exit 0). @TIME is epoch ms or\n"
"      RFC 3339 (@2026-11-25T07:00:00Z). --from defaults to the group's\n"
"      committed offset with --group, else earliest. With --group the next\n"
"      offset is committed after every printed batch and at the end.\n"
"      A processor's output topic is followed across cut-overs: on a switch\n"
"      \"kappactl: TOPIC switched to generation N; reading it from the start\"\n"
"      goes to stderr and every partition is read again from its start in\n"
"      the new generation (with --group, those offsets are committed).\n"
"      --all-versions (a processor's output topic or its NAME.dlq): reads\n"
"      every version's topic to its end, version 1 first, \"topic\" naming\n"
"      the version's (TOPIC.v1, TOPIC.v2, ...); not with --follow or --group.\n"
"\n"
"  group list                        {\"group\":\"G\"} per line\n"
"  group describe G                  per partition with an offset:\n"
"      {\"group\",\"topic\",\"partition\",\"offset\",\"end_offset\",\"lag\"}\n"
"  group reset G TOPIC --to earliest|latest|OFFSET|@TIME [--execute]\n"
"      Prints the plan, one line per partition of TOPIC:\n"
"      {\"group\",\"topic\",\"partition\",\"current\",\"new\",\"executed\"}\n"
"      (current null when the group has no offset there; an OFFSET is kept\n"
"      within each partition's retained range). Only with --execute are the\n"
"      offsets committed, and then \"executed\" is true.\n"
"\n"
"  proc create NAME --file PATH --input TOPIC[,TOPIC...] [--output TOPIC]...\n"
"              [--from earliest|latest|@TIME] [--config JSON]\n"
"              [--max-error-rate R] [--error-window-min N]\n"
"              [--time-budget-ms N] [--memory-limit BYTES] [--watch]\n"
"      Loads a .lua or .so processor into the server (the file must be\n"
"      readable by it) and prints its status once init has run. --watch:\n"
"      reload the code whenever the file changes. The processor pauses when\n"
"      more than the fraction R (default 0.5) of its recent records fail,\n"
"      judged once N of them were seen (default: the server's\n"
"      error_window_min, 20).\n"
"  proc list                         one status per line\n"
"  proc status|pause|resume NAME     the processor's status: version, hash,\n"
"      state, inputs with offsets and lag, records processed, errors\n"
"  proc delete NAME                  {\"deleted\":\"NAME\"}\n"
"  proc reload NAME [--file PATH] [--watch|--no-watch]\n"
"      Compiles the new code (default: the live file, read again) and runs\n"
"      its init beside the old; on success the swap is seamless and the\n"
"      status is printed. If compile or init fails the old code keeps running\n"
"      and the error (with file and line) is printed, exit 1. --watch and\n"
"      --no-watch switch reloading on file changes.\n"
"  proc replay NAME [--file PATH] [--from earliest|OFFSET|@TIME] [--rate N]\n"
"              [--cascade] [--wait]\n"
"      Starts version K+1 from history (OFFSET: in every input partition;\n"
"      --rate: records/s) beside the live version K, which keeps serving; it\n"
"      cuts over once caught up. Prints {\"version\":K+1,\"proc\":STATUS}. With\n"
"      --wait: shows progress until the cut-over, as a bar on stderr when it\n"
"      is a terminal, else one line per second on stdout:\n"
"        {\"version\",\"records_done\",\"records_to_go\",\"records_per_second\",\n"
"         \"eta_ms\"}\n"
"      then prints the final status (exit 0); a failed replay prints its\n"
"      reason (exit 1) and leaves version K live. --cascade: also replays\n"
"      every processor downstream of NAME (reading its outputs, transitively),\n"
"      reading the new versions' outputs, and cuts them all over together\n"
"      once all have caught up; adds \"cascade\":[{\"name\",\"version\"}].\n"
"  proc rollback NAME [--to VERSION[.REVISION]]\n"
"      Undoes the last change and prints the status: after a reload, back\n"
"      to the revision before it (swapped between batches, the view kept);\n"
"      after a cut-over, back to the previous version at the revision it\n"
"      ran last, with its view. Repeated, it steps further back. --to goes\n"
"      to the version (at the revision it ran last) or VERSION.REVISION\n"
"      named. Nothing to roll back, an unknown version or revision, or one\n"
"      already live: one line on stderr, exit 1.\n"
"  proc rollback NAME --cascade      NAME and every processor downstream of\n"
"      it back to the version live before theirs, together; prints\n"
"      {\"proc\":STATUS,\"cascade\":[{\"name\",\"version\"}]}. If one cannot\n"
"      roll back, nothing changes (one line on stderr, exit 1).\n"
"  proc graph                        the pipeline as one JSON object:\n"
"      {\"processors\":[{\"name\",\"version\",\"state\",\"stalled\",\"inputs\",\n"
"       \"outputs\",\"dlq\",\"cascade\",\"versions\":[{\"version\",\"role\",\n"
"       \"state\",\"inputs\",\"outputs\"}]}],\n"
"       \"topics\":[{\"name\",\"physical\",\"generation\",\"producer\",\n"
"       \"consumers\",\"switch\":{\"generation\",\"physical\",\"offsets\"}}],\n"
"       \"edges\":[{\"from\",\"to\",\"topic\"}]}\n"
"  proc versions NAME                one line per version: {\"version\",\"role\",\n"
"      \"state\",\"reason\",\"revision\",\"hash\",\"file\",\"created_ms\",\"inputs\",\"lag\",\n"
"      \"records_processed\",\"errors\",\"outputs\",\"rate\",\"previous_version\",\n"
"      \"revisions\":[{\"revision\",\"previous\",\"hash\",\"file\",\"created_ms\"}]}\n"
"      (revision: the current one; revisions: every one, oldest first)\n"
"  proc gc NAME                      removes retired and failed versions:\n"
"                                    {\"removed\":N}\n"
"  proc reset NAME --to earliest|latest|OFFSET|@TIME [--execute]\n"
"      Rewinds the live version in place (the view is cleared; outputs are\n"
"      written again). Prints the plan, one line per input partition:\n"
"      {\"topic\",\"partition\",\"current\",\"new\",\"executed\"}; only with --execute\n"
"      does it act, and then \"executed\" is true.\n"
"  proc verify NAME [--from earliest|OFFSET|@TIME] [--to @TIME]\n"
"      Replays the range through the live code in a scratch instance and\n"
"      compares its outputs (and view, over the whole history) with the live\n"
"      version's. Prints the line `identical` (exit 0), or\n"
"      {\"identical\":false,\"difference\":{...}} with live and replay values as\n"
"      JSON and a summary on stderr, \"kappactl: differs at TOPIC/PARTITION\n"
"      offset N: live X, replay Y\" or \"... at view key K: ...\" (exit 1).\n"
"\n"
"  view get NAME KEY                 the value as JSON, null when absent\n"
"  view scan NAME [--prefix P] [--limit N]\n"
"                                    {\"key\",\"value\"} per line, in key order\n"
"\n"
"  run FILE --input EVENTS.jsonl [--key-field F] [--ts-field F] [--topic T]\n"
"          [--config JSON] [--view]\n"
"      Runs a processor offline over JSON lines with the server's own code:\n"
"      prints each emitted record {\"topic\",\"key\",\"value\"}, or with\n"
"      --view the final view as one JSON object. Records get topic T\n"
"      (default \"input\"), partition 0, offsets 0, 1, ..., ts from\n"
"      --ts-field (else 0). A record that raises is reported with its line\n"
"      number (exit 1); the others still run.\n"
"\n"
"  top [--json] [--interval MS]\n"
"      Topics (end offsets, append rate) and processors (version, state,\n"
"      records/s, lag, replay progress and ETA), refreshed every --interval\n"
"      (default 1000) ms in place on a terminal until SIGINT or q. --json:\n"
"      two samples --interval apart, then one object\n"
"      {\"topics\":[{\"name\",\"partitions\",\"end_offsets\",\"append_rate\"}],\n"
"       \"processors\":[{\"name\",\"version\",\"state\",\"records_processed\",\n"
"       \"records_per_second\",\"lag\",\"replay\"}]} (unknown rates null).\n"
"\n"
"  help, --help                      this text\n";

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
	if (strcmp(argv[a], "help") == 0 || strcmp(argv[a], "--help") == 0 ||
	    strcmp(argv[a], "-h") == 0) {
		fputs(usage_text, stdout);
		return KP_CTL_EXIT_OK;
	}
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
