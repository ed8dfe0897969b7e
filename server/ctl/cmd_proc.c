/*
 * cmd_proc.c - `kappactl proc create|list|status|pause|resume|delete`, and
 * the dispatch of the other proc verbs (cmd_proc.h).
 *
 * Output: create, status, pause and resume print the processor's status as
 * one JSON object (docs/PROTOCOL.md, proc_status); list prints one status
 * per line; delete prints {"deleted":"NAME"}.
 */
#include "cmd_proc.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "json_mp.h"
#include "mpget.h"

#define CREATE_USAGE                                                          \
	"kappactl proc create NAME --file PATH --input TOPIC[,TOPIC...]"      \
	" [--output TOPIC]... [--from earliest|latest|@TIME] [--config JSON]" \
	" [--max-error-rate R] [--error-window-min N] [--time-budget-ms N]" \
	" [--memory-limit BYTES] [--watch]"

int kp_ctl_proc_request(struct kp_ctl_ctx *ctx, const char *op,
			json_t *fields, struct kp_ctl_client *c,
			struct kp_ctl_resp *resp)
{
	struct kp_error err;
	int rc;

	c->fd = -1;
	if (fields == NULL)
		return kp_ctl_fail(ctx, "out of memory");
	rc = kp_ctl_connect(ctx, c);
	if (rc != 0) {
		json_decref(fields);
		return rc;
	}
	kp_ctl_resp_init(resp);
	rc = kp_ctl_client_call(c, op, fields, resp, &err);
	json_decref(fields);
	if (rc == 0)
		return 0;
	kp_ctl_resp_destroy(resp);
	kp_ctl_client_close(c);
	return kp_ctl_fail(ctx, "%s", err.msg);
}

int kp_ctl_proc_call(struct kp_ctl_ctx *ctx, const char *op, json_t *fields,
		     const char *print)
{
	struct kp_ctl_client c;
	struct kp_ctl_resp resp;
	int rc = kp_ctl_proc_request(ctx, op, fields, &c, &resp);

	if (rc != 0)
		return rc;
	if (print == NULL) {
		rc = 0;
	} else if (kp_ctl_mp_get(resp.map, print) != NULL &&
		   kp_ctl_mp_get(resp.map, print)->type == MSGPACK_OBJECT_ARRAY) {
		const msgpack_object *a = kp_ctl_mp_get(resp.map, print);

		for (uint32_t i = 0; rc == 0 && i < a->via.array.size; i++)
			rc = kp_ctl_print_mp(ctx, &a->via.array.ptr[i]);
	} else {
		rc = kp_ctl_print_mp(ctx, kp_ctl_mp_get(resp.map, print));
	}
	kp_ctl_resp_destroy(&resp);
	kp_ctl_client_close(&c);
	return rc;
}

/* Appends the comma-separated topic names in list to the JSON array a. */
static int add_topics(struct kp_ctl_ctx *ctx, json_t *a, const char *list)
{
	const char *p = list;

	while (*p != '\0') {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);

		if (len == 0)
			return kp_ctl_usage(ctx, "empty topic name in '%s'", list);
		json_array_append_new(a, json_stringn(p, len));
		p += len + (comma ? 1 : 0);
	}
	return 0;
}

int kp_ctl_proc_position(struct kp_ctl_ctx *ctx, const char *flag,
			 const char *s, unsigned allow, json_t **out)
{
	static const char *const forms[] = { "earliest", "latest", "OFFSET",
					     "@TIME" };
	struct kp_ctl_pos pos;
	char want[64] = "";

	if (kp_ctl_pos_parse(s, &pos) == 0 && (allow & (1u << pos.kind)) &&
	    !(pos.kind == KP_CTL_POS_OFFSET && pos.offset > INT64_MAX)) {
		*out = kp_ctl_pos_json(&pos);
		return *out != NULL ? 0 : kp_ctl_fail(ctx, "out of memory");
	}
	for (unsigned k = 0; k < 4; k++) {
		if (allow & (1u << k)) {
			strcat(want, want[0] ? "|" : "");
			strcat(want, forms[k]);
		}
	}
	return kp_ctl_usage(ctx, "--%s wants %s (@TIME: epoch ms or RFC 3339),"
			    " not '%s'", flag, want, s);
}

int kp_ctl_proc_file(struct kp_ctl_ctx *ctx, json_t *f, const char *path)
{
	char abs[PATH_MAX];

	if (realpath(path, abs) == NULL)
		return kp_ctl_fail(ctx, "%s: %s", path, strerror(errno));
	kp_ctl_name_file(ctx, path, abs);
	if (json_object_set_new(f, "file", json_string(abs)) != 0)
		return kp_ctl_fail(ctx, "out of memory");
	return 0;
}

static int add_from(struct kp_ctl_ctx *ctx, json_t *f, const char *from)
{
	int64_t ms;

	if (from == NULL)
		return 0;
	if (strcmp(from, "earliest") == 0 || strcmp(from, "latest") == 0) {
		json_object_set_new(f, "from", json_string(from));
		return 0;
	}
	if (from[0] != '@' || kp_ctl_time_parse(from + 1, &ms) != 0)
		return kp_ctl_usage(ctx,
				    "--from is earliest, latest or @TIME (epoch ms or RFC 3339)");
	json_object_set_new(f, "from", json_integer(ms));
	return 0;
}

/* The limits given as flags (NULL: not given), as proc_create fields. */
struct limits {
	const char *rate;    /* --max-error-rate */
	const char *window;  /* --error-window-min */
	const char *budget;  /* --time-budget-ms */
	const char *memory;  /* --memory-limit */
};

static int add_limits(struct kp_ctl_ctx *ctx, json_t *f,
		      const struct limits *l)
{
	const char *rate = l->rate, *budget = l->budget, *memory = l->memory;
	uint64_t u;

	if (rate != NULL) {
		char *end;
		double r = strtod(rate, &end);

		if (*rate == '\0' || *end != '\0' || r < 0 || r > 1)
			return kp_ctl_usage(ctx, "--max-error-rate wants 0..1");
		json_object_set_new(f, "max_error_rate", json_real(r));
	}
	if (l->window != NULL) {
		if (kp_ctl_parse_u64(l->window, &u) != 0 || u < 1 ||
		    u > UINT32_MAX)
			return kp_ctl_usage(ctx, "--error-window-min wants a number of records (at least 1)");
		json_object_set_new(f, "error_window_min",
				    json_integer((json_int_t)u));
	}
	if (budget != NULL) {
		if (kp_ctl_parse_u64(budget, &u) != 0 || u > INT64_MAX)
			return kp_ctl_usage(ctx, "--time-budget-ms wants milliseconds");
		json_object_set_new(f, "time_budget_ms", json_integer((json_int_t)u));
	}
	if (memory != NULL) {
		if (kp_ctl_parse_u64(memory, &u) != 0 || u > INT64_MAX)
			return kp_ctl_usage(ctx, "--memory-limit wants bytes");
		json_object_set_new(f, "memory_limit", json_integer((json_int_t)u));
	}
	return 0;
}

/* Collects repeated --output flags, which the option table cannot. */
static int take_outputs(int *argc, char **argv, json_t *outputs)
{
	int w = 0;

	for (int r = 0; r < *argc; r++) {
		if (strcmp(argv[r], "--output") == 0 && r + 1 < *argc) {
			json_array_append_new(outputs, json_string(argv[++r]));
			continue;
		}
		if (strncmp(argv[r], "--output=", 9) == 0) {
			json_array_append_new(outputs, json_string(argv[r] + 9));
			continue;
		}
		argv[w++] = argv[r];
	}
	*argc = w;
	return 0;
}

static int proc_create(struct kp_ctl_ctx *ctx, int argc, char **argv)
{
	const char *file = NULL, *input = NULL, *from = NULL, *config = NULL,
		   *pos[1];
	struct limits lim = { NULL, NULL, NULL, NULL };
	int npos, rc, watch = 0;
	const struct kp_ctl_opt opts[] = {
		{ "file", &file, NULL },
		{ "input", &input, NULL },
		{ "from", &from, NULL },
		{ "config", &config, NULL },
		{ "max-error-rate", &lim.rate, NULL },
		{ "error-window-min", &lim.window, NULL },
		{ "time-budget-ms", &lim.budget, NULL },
		{ "memory-limit", &lim.memory, NULL },
		{ "watch", NULL, &watch },
		{ NULL, NULL, NULL },
	};
	json_t *f, *inputs, *outputs = json_array();
	char path[PATH_MAX], errbuf[256];

	take_outputs(&argc, argv, outputs);
	rc = kp_ctl_args_parse(ctx, argc, argv, opts, pos, 1, &npos);
	if (rc == 0 && (npos != 1 || file == NULL || input == NULL))
		rc = kp_ctl_usage(ctx, CREATE_USAGE);
	if (rc == 0 && realpath(file, path) == NULL)
		rc = kp_ctl_fail(ctx, "%s: no such file", file);
	if (rc == 0)
		kp_ctl_name_file(ctx, file, path);
	if (rc != 0) {
		json_decref(outputs);
		return rc;
	}
	inputs = json_array();
	f = json_pack("{ss ss so so}", "name", pos[0], "file", path, "inputs",
		      inputs, "outputs", outputs);
	if (f == NULL)
		return kp_ctl_fail(ctx, "out of memory");
	rc = add_topics(ctx, inputs, input);
	if (rc == 0)
		rc = add_from(ctx, f, from);
	if (rc == 0)
		rc = add_limits(ctx, f, &lim);
	if (rc == 0 && watch)
		json_object_set_new(f, "watch", json_true());
	if (rc == 0 && config != NULL) {
		json_t *cfg = kp_ctl_json_parse(config, strlen(config), errbuf,
						sizeof(errbuf));

		if (cfg == NULL || !json_is_object(cfg)) {
			json_decref(cfg);
			rc = kp_ctl_usage(ctx, "--config wants a JSON object%s%s",
					  cfg == NULL ? ": " : "",
					  cfg == NULL ? errbuf : "");
		} else {
			json_object_set_new(f, "config", cfg);
		}
	}
	if (rc != 0) {
		json_decref(f);
		return rc;
	}
	return kp_ctl_proc_call(ctx, "proc_create", f, "proc");
}

/* list takes no argument; the others one NAME. */
static int proc_named(struct kp_ctl_ctx *ctx, const char *verb, int argc,
		      char **argv)
{
	const char *pos[1];
	char op[32];
	int npos, rc;

	rc = kp_ctl_args_parse(ctx, argc, argv, NULL, pos, 1, &npos);
	if (rc != 0)
		return rc;
	if (npos != 1)
		return kp_ctl_usage(ctx, "kappactl proc %s NAME", verb);
	snprintf(op, sizeof(op), "proc_%s", verb);
	if (strcmp(verb, "delete") == 0) {
		rc = kp_ctl_proc_call(ctx, op, json_pack("{ss}", "name", pos[0]), NULL);
		return rc != 0 ? rc
			       : kp_ctl_print(ctx, json_pack("{ss}", "deleted",
							     pos[0]));
	}
	return kp_ctl_proc_call(ctx, op, json_pack("{ss}", "name", pos[0]), "proc");
}

/* A proc verb implemented in another file. */
struct proc_verb {
	const char *name;                                          /* word */
	int (*run)(struct kp_ctl_ctx *ctx, int argc, char **argv); /* verb */
};

static const struct proc_verb proc_verbs[] = {
	{ "reload", kp_ctl_proc_reload },
	{ "replay", kp_ctl_proc_replay },
	{ "rollback", kp_ctl_proc_rollback_any },
	{ "graph", kp_ctl_proc_graph },
	{ "versions", kp_ctl_proc_versions },
	{ "gc", kp_ctl_proc_gc },
	{ "reset", kp_ctl_proc_reset },
	{ "verify", kp_ctl_proc_verify },
};

int kp_ctl_cmd_proc(struct kp_ctl_ctx *ctx, int argc, char **argv)
{
	static const char *const named[] = { "status", "pause", "resume",
					     "delete" };
	const char *pos[1];
	int npos, rc;

	if (argc < 1)
		return kp_ctl_usage(ctx,
				    "kappactl proc create|list|status|pause|resume|delete|"
				    "reload|replay|rollback|versions|gc|reset|verify|graph ...");
	for (size_t i = 0; i < sizeof(proc_verbs) / sizeof(proc_verbs[0]); i++) {
		if (strcmp(argv[0], proc_verbs[i].name) == 0)
			return proc_verbs[i].run(ctx, argc - 1, argv + 1);
	}
	if (strcmp(argv[0], "create") == 0)
		return proc_create(ctx, argc - 1, argv + 1);
	if (strcmp(argv[0], "list") == 0) {
		rc = kp_ctl_args_parse(ctx, argc - 1, argv + 1, NULL, pos, 0,
				       &npos);
		return rc != 0 ? rc : kp_ctl_proc_call(ctx, "proc_list", json_object(),
						 "procs");
	}
	for (size_t i = 0; i < sizeof(named) / sizeof(named[0]); i++) {
		if (strcmp(argv[0], named[i]) == 0)
			return proc_named(ctx, named[i], argc - 1, argv + 1);
	}
	return kp_ctl_usage(ctx, "unknown verb 'proc %s'", argv[0]);
}
