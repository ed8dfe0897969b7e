/*
 * help.c - the table of kappactl's commands and the printing of the full
 * help text and of one command's help from it; see help.h.
 */
#include "help.h"

#include <errno.h>
#include <string.h>

#include "cmd.h"

static const char header[] =
"usage: kappactl [--addr HOST:PORT] [--token-file FILE]\n"
"                [--tls-ca FILE] [--tls-cert FILE --tls-key FILE] COMMAND ...\n"
"       kappactl help [COMMAND]   (or kappactl COMMAND --help)\n"
"       kappactl --version\n"
"\n"
"Talks to kappad (docs/PROTOCOL.md) at --addr, else $KAPPA_ADDR, else\n"
"127.0.0.1:7070, authenticating with the token in --token-file's first\n"
"line, else $KAPPA_TOKEN (a server with tokens configured needs one).\n"
"With --tls-ca (the CA the server's certificate chains to) it speaks TLS,\n"
"presenting --tls-cert/--tls-key when the server asks for a client\n"
"certificate. These options may also follow the command. The first\n"
"exchange must be answered within 1 s: a server that stays silent, answers\n"
"like an HTTP server (kappad's --http port) or not in kappa frames is\n"
"reported as such. Results are JSON, one object per line. Errors: one line\n"
"\"kappactl: ...\" on stderr; exit status 1 for errors from the server or\n"
"in the data, 2 for usage errors.\n";

static const char global_flags[] =
"  (and the global --addr, --token-file, --tls-ca, --tls-cert, --tls-key:\n"
"  see kappactl --help)\n";

static const struct kp_ctl_help_cmd cmds[] = {
{ "ping", "ping",
  "checks that the server answers; prints its version",
  "Prints the server's answer without its id: {\"ok\":true,\"version\":\"...\"}.",
  NULL,
  "kappactl ping\n"
  "kappactl --addr 10.0.0.5:7070 --token-file ~/.kappa-token ping" },
{ "version", "version",
  "prints kappactl's own version",
  "Prints \"kappactl VERSION\" (also as kappactl --version); the server's\n"
  "version is what kappactl ping prints.",
  NULL,
  "kappactl --version" },

{ "topic create",
  "topic create NAME [--partitions N] [--fsync always|interval|never]\n"
  "             [--fsync-interval-ms N] [--retention-ms N]\n"
  "             [--retention-bytes N] [--segment-bytes N]\n"
  "             [--segment-ms N]\n"
  "             [--cleanup delete|compact|compact,delete]\n"
  "             [--delete-retention-ms N]",
  "creates a topic",
  "Creates topic NAME (1..200 of A-Z a-z 0-9 . _ -) and prints its\n"
  "description.",
  "--partitions N\tpartitions, 1..1024 (default 1)\n"
  "--fsync MODE\talways (ack once on disk; default), interval or never\n"
  "--fsync-interval-ms N\twith --fsync interval: how often (default 1000)\n"
  "--retention-ms N\tdelete segments older than this (default -1: keep)\n"
  "--retention-bytes N\tper partition, at most this much (default -1: all)\n"
  "--segment-bytes N\troll the active segment at this size (128 MiB)\n"
  "--segment-ms N\troll the active segment at this age (7 days)\n"
  "--cleanup POLICY\tdelete (default), compact (latest per key), both\n"
  "--delete-retention-ms N\twith compaction: how long tombstones stay (1 day)",
  "kappactl topic create orders --partitions 3 --fsync always\n"
  "kappactl topic create users --cleanup compact" },
{ "topic list", "topic list",
  "lists the topics",
  "Prints one topic description per line, sorted by name.",
  NULL,
  "kappactl topic list" },
{ "topic describe", "topic describe NAME",
  "shows one topic",
  "Prints the topic's description (docs/PROTOCOL.md, topic_describe).",
  NULL,
  "kappactl topic describe orders" },
{ "topic delete", "topic delete NAME",
  "deletes a topic and its data",
  "Deletes the topic and its data; prints {\"deleted\":\"NAME\"}. A topic a\n"
  "processor reads or writes is refused (TOPIC_IN_USE).",
  NULL,
  "kappactl topic delete orders" },

{ "produce", "produce TOPIC [--key-field F] [--ts-field F] [--partition N] [--raw]",
  "sends the lines on stdin as records",
  "Reads lines on stdin, each one record's value: JSON (any value; blank\n"
  "lines are skipped, an invalid one reported, \"line N: invalid JSON: ...\",\n"
  "exit 1, while the others are still sent), or with --raw the line as a\n"
  "string (no JSON parsing; the line end, \\n or \\r\\n, is dropped; empty\n"
  "lines are skipped, blanks are kept). The topic must exist (a server\n"
  "with auto_create_topics creates it on the first record): a missing one\n"
  "is an error even when stdin is empty. --key-field: the key is member F\n"
  "of the value (a string as-is, other values as JSON text; null: no\n"
  "key). --ts-field: ts from member F (epoch ms or RFC 3339; null: the\n"
  "server's clock). A value without member F (or not an object) is sent\n"
  "all the same, with \"kappactl: line N: no member 'F'; sent without a\n"
  "key\" (or \"with the server's time\") on stderr for the first 100 such\n"
  "lines and \"kappactl: N records had no member 'F' (...)\" at the end;\n"
  "exit 0. Without --partition the server routes by key. Prints\n"
  "{\"acked\":N}.",
  "--key-field F\tthe key is member F of each value\n"
  "--ts-field F\tthe event time is member F (epoch ms or RFC 3339)\n"
  "--partition N\twrite every record to partition N\n"
  "--raw\teach line is a string value (not with --key-field)",
  "printf '{\"id\":1,\"user\":\"ada\"}\\n' | kappactl produce orders --key-field user\n"
  "kappactl produce logs --raw < app.log" },
{ "consume",
  "consume TOPIC [--partition N] [--from earliest|latest|OFFSET|@TIME]\n"
  "              [--count N] [--follow] [--group G] [--all-versions]\n"
  "              [--raw]",
  "prints a topic's records",
  "Prints {\"topic\",\"partition\",\"offset\",\"ts\",\"key\",\"value\"} per\n"
  "record (key: string, \"base64:...\" when not UTF-8, or null), plus\n"
  "\"provenance\":{\"proc\",\"version\",\"topic\",\"partition\",\"offset\"}\n"
  "for records a processor wrote; with --raw only each value, one per line:\n"
  "a string as its text, any other value as JSON. Reads all partitions\n"
  "unless --partition; stops at the end of the log unless --follow (then\n"
  "until SIGINT/SIGTERM, exit 0). @TIME is epoch ms or RFC 3339\n"
  "(@2026-11-25T07:00:00Z). --from defaults to the group's committed\n"
  "offset with --group, else earliest. With --group the next offset is\n"
  "committed after every printed batch and at the end.\n"
  "A processor's output topic is followed across cut-overs: on a switch\n"
  "\"kappactl: TOPIC switched to generation N; reading it from the start\"\n"
  "goes to stderr and every partition is read again from its start in\n"
  "the new generation (with --group, those offsets are committed).\n"
  "--all-versions (a processor's output topic or its NAME.dlq): reads\n"
  "every version's topic to its end, version 1 first, \"topic\" naming\n"
  "the version's (TOPIC.v1, TOPIC.v2, ...); not with --follow or --group.",
  "--partition N\tread partition N only (default: all)\n"
  "--from POS\tearliest, latest, an offset, or @TIME\n"
  "--count N\tstop after N records\n"
  "--follow\twait for more records, until SIGINT/SIGTERM\n"
  "--group G\tstart at the group's offsets and commit them\n"
  "--all-versions\tevery version of a processor's output, oldest first\n"
  "--raw\tprint values only: a string as text, others as JSON",
  "kappactl consume orders --from earliest\n"
  "kappactl consume orders --follow --count 10 --group billing\n"
  "kappactl consume logs --raw --from @2026-11-25T07:00:00Z" },

{ "group list", "group list",
  "lists the consumer groups",
  "Prints {\"group\":\"G\"} per line, sorted.",
  NULL,
  "kappactl group list" },
{ "group describe", "group describe G",
  "shows a group's offsets and lag",
  "Prints, per partition where the group has committed an offset,\n"
  "{\"group\",\"topic\",\"partition\",\"offset\",\"end_offset\",\"lag\"}. A group\n"
  "that has committed no offsets is an error: \"kappactl: no group 'G' (it\n"
  "has committed no offsets)\", exit 1.",
  NULL,
  "kappactl group describe billing" },
{ "group reset",
  "group reset G TOPIC --to earliest|latest|OFFSET|@TIME [--execute]",
  "moves a group's offsets in a topic",
  "Prints the plan, one line per partition of TOPIC:\n"
  "{\"group\",\"topic\",\"partition\",\"current\",\"new\",\"executed\"}\n"
  "(current null when the group has no offset there; an OFFSET is kept\n"
  "within each partition's retained range). Only with --execute are the\n"
  "offsets committed, and then \"executed\" is true.",
  "--to POS\tearliest, latest, an offset, or @TIME (required)\n"
  "--execute\tcommit the new offsets (else only print the plan)",
  "kappactl group reset billing orders --to @2026-11-25T07:00:00Z\n"
  "kappactl group reset billing orders --to earliest --execute" },

{ "proc create",
  "proc create NAME --file PATH --input TOPIC[,TOPIC...]\n"
  "            [--output TOPIC]...\n"
  "            [--from earliest|latest|@TIME] [--config JSON]\n"
  "            [--max-error-rate R] [--error-window-min N]\n"
  "            [--time-budget-ms N] [--memory-limit BYTES] [--watch]",
  "loads a processor into the server",
  "Loads a .lua or .so processor into the server (the file must be\n"
  "readable by it) and prints its status once init has run. --watch:\n"
  "reload the code whenever the file changes. The processor pauses when\n"
  "more than the fraction R (default 0.5) of its recent records fail,\n"
  "judged once N of them were seen (default: the server's\n"
  "error_window_min, 20).",
  "--file PATH\tthe processor, .lua or .so (required)\n"
  "--input TOPICS\tthe topics it reads, comma-separated (required)\n"
  "--output TOPIC\ta topic it may emit to; repeat it for more\n"
  "--from POS\twhere it starts: earliest (default), latest or @TIME\n"
  "--config JSON\tits settings, a JSON object (ctx.config)\n"
  "--max-error-rate R\tpause above this fraction of failures (0.5)\n"
  "--error-window-min N\trecords seen before the rate counts (20)\n"
  "--time-budget-ms N\tlongest a call may make no progress (5000)\n"
  "--memory-limit BYTES\twhat the processor may allocate (256 MiB)\n"
  "--watch\treload the code whenever the file changes",
  "kappactl proc create wc --file examples/lua/wordcount.lua --input lines\n"
  "kappactl proc create wc --file wc.lua --input lines --output counts --watch" },
{ "proc list", "proc list",
  "lists the processors",
  "Prints one status per line (as proc status), sorted by name.",
  NULL,
  "kappactl proc list" },
{ "proc status", "proc status NAME",
  "shows a processor's status",
  "Prints the processor's status: version, hash, state, inputs with\n"
  "offsets and lag, records processed, errors.",
  NULL,
  "kappactl proc status wc" },
{ "proc pause", "proc pause NAME",
  "stops a processor from taking records",
  "Pauses the processor (its offsets and view are kept) and prints its\n"
  "status.",
  NULL,
  "kappactl proc pause wc" },
{ "proc resume", "proc resume NAME",
  "lets a paused processor go on",
  "Resumes the processor where it stopped and prints its status.",
  NULL,
  "kappactl proc resume wc" },
{ "proc delete", "proc delete NAME",
  "removes a processor",
  "Removes the processor; prints {\"deleted\":\"NAME\"}.",
  NULL,
  "kappactl proc delete wc" },
{ "proc reload", "proc reload NAME [--file PATH] [--watch|--no-watch]",
  "swaps in new code, keeping the view",
  "Compiles the new code (default: the live file, read again) and runs\n"
  "its init beside the old; on success the swap is seamless and the\n"
  "status is printed. If compile or init fails the old code keeps running\n"
  "and the error (with file and line) is printed, exit 1. --watch and\n"
  "--no-watch switch reloading on file changes.",
  "--file PATH\tthe new code (default: the live file, read again)\n"
  "--watch\tfrom now on, reload whenever the file changes\n"
  "--no-watch\tstop reloading on file changes",
  "kappactl proc reload wc\n"
  "kappactl proc reload wc --file wordcount-v2.lua" },
{ "proc replay",
  "proc replay NAME [--file PATH] [--from earliest|OFFSET|@TIME]\n"
  "            [--rate N] [--cascade] [--wait]",
  "rebuilds a processor from history beside the live one",
  "Starts version K+1 from history (OFFSET: in every input partition;\n"
  "--rate: records/s) beside the live version K, which keeps serving; it\n"
  "cuts over once caught up. Prints {\"version\":K+1,\"proc\":STATUS}. With\n"
  "--wait: shows progress until the cut-over, as a bar on stderr when it\n"
  "is a terminal, else one line per second on stdout:\n"
  "  {\"version\",\"records_done\",\"records_to_go\",\"records_per_second\",\n"
  "   \"eta_ms\"}\n"
  "then prints the final status (exit 0); a failed replay prints its\n"
  "reason (exit 1) and leaves version K live. --cascade: also replays\n"
  "every processor downstream of NAME (reading its outputs, transitively),\n"
  "reading the new versions' outputs, and cuts them all over together\n"
  "once all have caught up; adds \"cascade\":[{\"name\",\"version\"}].",
  "--file PATH\tthe new version's code (default: the live file)\n"
  "--from POS\twhere it starts: earliest (default), an offset, @TIME\n"
  "--rate N\tat most N records per second\n"
  "--cascade\treplay those downstream too, cut over together\n"
  "--wait\tshow progress until the cut-over, then the status",
  "kappactl proc replay wc --file wordcount-v2.lua --wait\n"
  "kappactl proc replay wc --cascade --wait" },
{ "proc rollback",
  "proc rollback NAME [--to VERSION[.REVISION] | --cascade]",
  "undoes the last reload or cut-over",
  "Undoes the last change and prints the status: after a reload, back\n"
  "to the revision before it (swapped between batches, the view kept);\n"
  "after a cut-over, back to the previous version at the revision it\n"
  "ran last, with its view. Repeated, it steps further back. --to goes\n"
  "to the version (at the revision it ran last) or VERSION.REVISION\n"
  "named. Nothing to roll back, an unknown version or revision, or one\n"
  "already live: one line on stderr, exit 1.\n"
  "With --cascade: NAME and every processor downstream of it back to the\n"
  "version live before theirs, together; prints\n"
  "{\"proc\":STATUS,\"cascade\":[{\"name\",\"version\"}]}. If one cannot\n"
  "roll back, nothing changes (one line on stderr, exit 1).",
  "--to VERSION[.REVISION]\tgo to this version or revision\n"
  "--cascade\troll back the processors downstream too",
  "kappactl proc rollback wc\n"
  "kappactl proc rollback wc --to 1.1" },
{ "proc graph", "proc graph",
  "prints the pipeline of processors and topics",
  "Prints the pipeline as one JSON object:\n"
  "{\"processors\":[{\"name\",\"version\",\"state\",\"stalled\",\"inputs\",\n"
  " \"outputs\",\"dlq\",\"cascade\",\"versions\":[{\"version\",\"role\",\n"
  " \"state\",\"inputs\",\"outputs\"}]}],\n"
  " \"topics\":[{\"name\",\"physical\",\"generation\",\"producer\",\n"
  " \"consumers\",\"switch\":{\"generation\",\"physical\",\"offsets\"}}],\n"
  " \"edges\":[{\"from\",\"to\",\"topic\"}]}",
  NULL,
  "kappactl proc graph" },
{ "proc versions", "proc versions NAME",
  "lists a processor's versions and revisions",
  "Prints one line per version: {\"version\",\"role\",\"state\",\"reason\",\n"
  "\"revision\",\"hash\",\"file\",\"created_ms\",\"inputs\",\"lag\",\n"
  "\"records_processed\",\"errors\",\"outputs\",\"rate\",\"previous_version\",\n"
  "\"revisions\":[{\"revision\",\"previous\",\"hash\",\"file\",\"created_ms\"}]}\n"
  "(revision: the current one; revisions: every one, oldest first).",
  NULL,
  "kappactl proc versions wc" },
{ "proc gc", "proc gc NAME",
  "removes retired and failed versions",
  "Removes the processor's retired and failed versions; prints\n"
  "{\"removed\":N}.",
  NULL,
  "kappactl proc gc wc" },
{ "proc reset", "proc reset NAME --to earliest|latest|OFFSET|@TIME [--execute]",
  "rewinds the live version in place",
  "Rewinds the live version in place (the view is cleared; outputs are\n"
  "written again). Prints the plan, one line per input partition:\n"
  "{\"topic\",\"partition\",\"current\",\"new\",\"executed\"}; only with\n"
  "--execute does it act, and then \"executed\" is true.",
  "--to POS\tearliest, latest, an offset, or @TIME (required)\n"
  "--execute\tact (else only print the plan)",
  "kappactl proc reset wc --to earliest\n"
  "kappactl proc reset wc --to earliest --execute" },
{ "proc verify", "proc verify NAME [--from earliest|OFFSET|@TIME] [--to @TIME]",
  "checks that a replay reproduces the live result",
  "Replays the range through the live code in a scratch instance and\n"
  "compares its outputs (and view, over the whole history) with the live\n"
  "version's. Prints the line `identical` (exit 0), or\n"
  "{\"identical\":false,\"difference\":{...}} with live and replay values as\n"
  "JSON and a summary on stderr, \"kappactl: differs at TOPIC/PARTITION\n"
  "offset N: live X, replay Y\" or \"... at view key K: ...\" (exit 1).",
  "--from POS\twhere it starts: earliest (default), OFFSET, @TIME\n"
  "--to @TIME\twhere it ends (default: the end of the inputs)",
  "kappactl proc verify wc\n"
  "kappactl proc verify wc --from @2026-11-25T07:00:00Z" },

{ "view get", "view get NAME KEY [KEY...]",
  "reads keys of a processor's view",
  "Prints the value of KEY in view NAME as JSON, null when absent; with\n"
  "several keys (at most 10000), one {\"key\",\"found\",\"value\"} per line in\n"
  "the order given.",
  NULL,
  "kappactl view get wc kappa\n"
  "kappactl view get wc kappa stream" },
{ "view scan", "view scan NAME [--prefix P] [--after KEY] [--limit N]",
  "lists a view's keys and values",
  "Prints {\"key\",\"value\"} per line, in key order: every key (fetched a\n"
  "page at a time), or the first N after KEY; when keys remain past\n"
  "--limit, stderr says how to go on.",
  "--prefix P\tonly keys that begin with P\n"
  "--after KEY\tstart after this key\n"
  "--limit N\tat most N keys",
  "kappactl view scan wc --prefix ka --limit 10" },

{ "run",
  "run FILE --input EVENTS.jsonl|- [--input-format auto|values|records]\n"
  "    [--key-field F] [--ts-field F] [--topic T] [--config JSON]\n"
  "    [--view]",
  "runs a processor offline over a file of events",
  "Runs a processor offline, with the server's own code, over the lines\n"
  "of EVENTS.jsonl (- reads stdin) and prints each emitted record as\n"
  "{\"topic\",\"ts\",\"key\",\"value\"} (ts: the event time of the record that\n"
  "emitted it); with --view, after them, the final view as one last line\n"
  "{\"view\":{KEY:VALUE,...}}. A record that raises is reported with its\n"
  "line number (exit 1); the others still run. Input lines are\n"
  "  values:  each line is one record's value; records get topic T\n"
  "           (default \"input\"), partition 0, offsets 0, 1, ..., the key\n"
  "           from --key-field and ts from --ts-field (else none and 0);\n"
  "  records: each line is an object with \"value\" and any of \"topic\",\n"
  "           \"partition\", \"offset\", \"ts\", \"key\", as run and consume\n"
  "           print them (other members are ignored), used where present,\n"
  "           else as for values; a --key-field/--ts-field member of the\n"
  "           value, where present, wins. A key \"base64:...\" whose\n"
  "           bytes are not UTF-8 is decoded, as consume writes it. A\n"
  "           {\"view\":...} line (run --view's last) is skipped;\n"
  "  auto (default): the first line that is not a {\"view\":...} line\n"
  "           decides: records when it is an object with \"topic\" and\n"
  "           \"value\" and no member but topic, partition, offset, ts, key,\n"
  "           value, provenance; else values (and then {\"view\":...} lines\n"
  "           are values too).\n"
  "So runs chain with a pipe: kappactl run a.lua --input ev.jsonl |\n"
  "kappactl run b.lua --input -",
  "--input FILE\tthe events, JSON lines; - reads stdin (required)\n"
  "--input-format F\tauto (default), values or records (above)\n"
  "--key-field F\tthe key is member F of each value\n"
  "--ts-field F\tts is member F of each value (epoch ms or RFC 3339)\n"
  "--topic T\tthe input topic of bare values (default \"input\")\n"
  "--config JSON\tthe processor's settings, a JSON object\n"
  "--view\tprint the final view after the emitted records",
  "kappactl run wordcount.lua --input examples/data/lines.jsonl --view\n"
  "kappactl run a.lua --input events.jsonl | kappactl run b.lua --input -\n"
  "kappactl consume orders | kappactl run orders.lua --input - --view" },

{ "top", "top [--json] [--interval MS]",
  "shows topics and processors at a glance",
  "Topics (end offsets, append rate) and processors (version, state,\n"
  "records/s, lag, replay progress and ETA), refreshed every --interval\n"
  "(default 1000) ms in place on a terminal until SIGINT or q. --json:\n"
  "two samples --interval apart, then one object\n"
  "{\"topics\":[{\"name\",\"partitions\",\"end_offsets\",\"append_rate\"}],\n"
  " \"processors\":[{\"name\",\"version\",\"state\",\"records_processed\",\n"
  " \"records_per_second\",\"lag\",\"replay\"}]} (unknown rates null).",
  "--json\tone JSON object from two samples, then exit\n"
  "--interval MS\ttime between samples, 10..3600000 (default 1000)",
  "kappactl top\n"
  "kappactl top --json --interval 500" },

{ "help", "help [COMMAND]",
  "prints this text, or one command's help",
  "Without COMMAND: this text (also --help, -h). With one (one or two\n"
  "words: run, topic create, proc): its usage, flags and examples; so does\n"
  "kappactl COMMAND --help (or -h). A group word alone (topic, group, proc,\n"
  "view) lists its commands. An unknown COMMAND: one line on stderr, exit 2.",
  NULL,
  "kappactl help run\n"
  "kappactl topic create --help\n"
  "kappactl help proc" },
};

const struct kp_ctl_help_cmd *kp_ctl_help_table(size_t *n)
{
	*n = sizeof(cmds) / sizeof(cmds[0]);
	return cmds;
}

/* The length of s's first word. */
static size_t word_len(const char *s)
{
	const char *sp = strchr(s, ' ');

	return sp ? (size_t)(sp - s) : strlen(s);
}

/* Writes text's lines to f, each after indent spaces. */
static void put_indented(FILE *f, const char *text, int indent)
{
	while (*text != '\0') {
		const char *nl = strchr(text, '\n');
		size_t len = nl ? (size_t)(nl - text) : strlen(text);

		fprintf(f, "%*s%.*s\n", indent, "", (int)len, text);
		text += len + (nl != NULL);
	}
}

/* Writes a usage: prefix, its first line, the others under the first. */
static void put_usage(FILE *f, const char *prefix, const char *usage)
{
	const char *nl = strchr(usage, '\n');
	size_t len = nl ? (size_t)(nl - usage) : strlen(usage);
	fprintf(f, "%s%.*s\n", prefix, (int)len, usage);
	if (nl != NULL)
		put_indented(f, nl + 1, (int)strlen(prefix));
}

/* Writes the "--flag V\tdescription" lines as two columns. */
static void put_flags(FILE *f, const char *flags)
{
	while (*flags != '\0') {
		const char *nl = strchr(flags, '\n');
		size_t len = nl ? (size_t)(nl - flags) : strlen(flags);
		const char *tab = memchr(flags, '\t', len);
		size_t name = tab ? (size_t)(tab - flags) : len;

		fprintf(f, "  %-23.*s %.*s\n", (int)name, flags,
			tab ? (int)(len - name - 1) : 0, tab ? tab + 1 : "");
		flags += len + (nl != NULL);
	}
}

void kp_ctl_help_all(FILE *f)
{
	size_t i;

	fputs(header, f);
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		const char *name = cmds[i].name;

		if (i == 0 || word_len(name) != word_len(cmds[i - 1].name) ||
		    strncmp(name, cmds[i - 1].name, word_len(name)) != 0)
			fputc('\n', f);
		put_usage(f, "  ", cmds[i].usage);
		put_indented(f, cmds[i].about, 6);
	}
}

int kp_ctl_help_is_group(const char *word)
{
	size_t i, n = strlen(word);

	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (strncmp(cmds[i].name, word, n) == 0 && cmds[i].name[n] == ' ')
			return 1;
	}
	return 0;
}

/* The entry named exactly by the words, or NULL. */
static const struct kp_ctl_help_cmd *find(const char *const *words,
					  int nwords)
{
	size_t i, n0;

	if (nwords < 1 || nwords > 2)
		return NULL;
	n0 = strlen(words[0]);
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		const char *name = cmds[i].name;

		if (strncmp(name, words[0], n0) != 0)
			continue;
		if (nwords == 1 && name[n0] == '\0')
			return &cmds[i];
		if (nwords == 2 && name[n0] == ' ' &&
		    strcmp(name + n0 + 1, words[1]) == 0)
			return &cmds[i];
	}
	return NULL;
}

/* The list of a group's commands (`kappactl help topic`). */
static void put_group(FILE *f, const char *group)
{
	size_t i, n = strlen(group);

	fprintf(f, "usage: kappactl %s VERB ..., VERB one of:\n\n", group);
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (strncmp(cmds[i].name, group, n) != 0 ||
		    cmds[i].name[n] != ' ')
			continue;
		put_usage(f, "  kappactl ", cmds[i].usage);
		fprintf(f, "      %s\n", cmds[i].summary);
	}
	fprintf(f, "\nOne verb's flags and examples: kappactl help %s VERB (or\n"
		   "kappactl %s VERB --help).\n", group, group);
}

int kp_ctl_help_command(FILE *f, const char *const *words, int nwords)
{
	const struct kp_ctl_help_cmd *c = find(words, nwords);

	if (c == NULL && nwords == 1 && kp_ctl_help_is_group(words[0])) {
		put_group(f, words[0]);
		return 0;
	}
	if (c == NULL)
		return -ENOENT;
	fputs("usage:\n", f);
	put_usage(f, "  kappactl ", c->usage);
	fputc('\n', f);
	put_indented(f, c->about, 2);
	fputs("\nflags:\n", f);
	if (c->flags != NULL)
		put_flags(f, c->flags);
	else
		fputs("  none of its own\n", f);
	fputs(global_flags, f);
	fputs(strchr(c->example, '\n') ? "\nexamples:\n" : "\nexample:\n", f);
	put_indented(f, c->example, 2);
	return 0;
}

int kp_ctl_help_run(FILE *out, FILE *err, int argc, char *const *argv)
{
	static const char *const itself[] = { "help" };
	const char *const *words = (const char *const *)argv;

	if (argc > 0 && (strcmp(argv[0], "--help") == 0 ||
			 strcmp(argv[0], "-h") == 0)) {
		argc = 1;
		words = itself;
	}
	if (argc == 0) {
		kp_ctl_help_all(out);
		return KP_CTL_EXIT_OK;
	}
	if (kp_ctl_help_command(out, words, argc) == 0)
		return KP_CTL_EXIT_OK;
	fprintf(err, "kappactl: no command '%s%s%s' (kappactl help lists them)\n",
		words[0], argc > 1 ? " " : "", argc > 1 ? words[1] : "");
	return KP_CTL_EXIT_USAGE;
}

int kp_ctl_help_asked(int argc, char *const *argv)
{
	for (int i = 0; i < argc && strcmp(argv[i], "--") != 0; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			return 1;
	}
	return 0;
}

int kp_ctl_help_for_verb(FILE *out, FILE *err, int argc, char *const *argv)
{
	int words = 1;

	if (kp_ctl_help_is_group(argv[0]) && argc > 1 && argv[1][0] != '-')
		words = 2;
	return kp_ctl_help_run(out, err, words, argv);
}
