/*
 * proc_instance.c - one running processor: owns its name, config and the
 * list of allowed outputs, references its code, and drives the descriptor's
 * callbacks with each record wrapped in a sink record (atomic: on failure
 * every emit and state change of the record is undone).
 *
 * Access pattern: start once, process per record (one begin_record, one
 * indirect call), stop once; interrupt from a watchdog thread.
 */
#include "proc_instance.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/mp.h"
#include "luahost/lua_adapter.h"

static const char empty_map[1] = { (char)0x80 };

/* The processor's message from err, or a stand-in when it left none. */
/*
 * Tidies a processor's message for people: the private copy the code runs
 * from is named by the file it came from, and a traceback heading with
 * nothing under it (a compile error) is dropped.
 */
static const char *proc_message(const struct kp_proc_code *code, char *msg)
{
	size_t from = strlen(code->loaded_path), to = strlen(code->path);
	char *at, *tail;

	msg[KP_PROC_ERR_MAX - 1] = '\0';
	if (from > 0 && strcmp(code->loaded_path, code->path) != 0) {
		while ((at = strstr(msg, code->loaded_path)) != NULL &&
		       strlen(msg) - from + to < KP_PROC_ERR_MAX) {
			memmove(at + to, at + from, strlen(at + from) + 1);
			memcpy(at, code->path, to);
		}
	}
	tail = strstr(msg, "stack traceback:");
	if (tail != NULL && tail[16 + strspn(tail + 16, " \t\n")] == '\0') {
		while (tail > msg && (tail[-1] == '\n' || tail[-1] == ' '))
			tail--;
		*tail = '\0';
	}
	return msg[0] != '\0' ? msg : "failed without a message";
}

/*
 * Copies the allowed output names into one block: the pointer array, then
 * the strings. *out is NULL when outputs is NULL (any topic allowed).
 */
static int copy_outputs(const char *const *outputs, size_t count, char ***out)
{
	size_t size = count * sizeof(char *);
	char **list, *p;

	*out = NULL;
	if (outputs == NULL)
		return 0;
	for (size_t i = 0; i < count; i++)
		size += strlen(outputs[i]) + 1;
	list = kp_malloc(size ? size : 1);
	if (list == NULL)
		return -ENOMEM;
	p = (char *)(list + count);
	for (size_t i = 0; i < count; i++) {
		size_t n = strlen(outputs[i]) + 1;

		memcpy(p, outputs[i], n);
		list[i] = p;
		p += n;
	}
	*out = list;
	return 0;
}

/* Frees what start allocated and zeroes the instance. */
static void release(struct kp_instance *inst)
{
	kp_free((void *)inst->sink.outputs);
	kp_sink_destroy(&inst->sink);
	kp_proc_code_unref(inst->code);
	kp_free(inst->config);
	kp_free(inst->name);
	memset(inst, 0, sizeof(*inst));
}

static int check_config(const char *config, size_t config_len,
			struct kp_error *err)
{
	struct kp_mp_view v;

	if (kp_mp_validate_one(config, config_len, &v) != 0 ||
	    kp_mp_type(v) != KP_MP_MAP)
		return kp_error_set(err, KP_ECONFIG,
				    "config must be one msgpack map");
	return 0;
}

/* Calls init inside a sink record so that a failed init leaves no trace. */
static int run_init(struct kp_instance *inst, struct kp_error *err)
{
	char msg[KP_PROC_ERR_MAX];
	int rc;

	if (inst->code->desc.init == NULL)
		return 0;
	msg[0] = '\0';
	kp_sink_begin_record(&inst->sink);
	rc = inst->code->desc.init(&inst->ctx, msg);
	if (rc == 0)
		return 0;
	kp_sink_abort_record(&inst->sink);
	kp_sink_clear_emits(&inst->sink);
	/* A module that does not parse never got to init: say what it is. */
	if (strncmp(msg, "syntax error: ", 14) == 0)
		return kp_error_set(err, KP_EINTERNAL, "%s",
				    proc_message(inst->code, msg));
	return kp_error_set(err, KP_EINTERNAL, "init failed: %s",
			    proc_message(inst->code, msg));
}

int kp_instance_start(struct kp_instance *inst, struct kp_proc_code *code,
		      const char *name, struct kp_view *view,
		      const char *config, size_t config_len,
		      const char *const *outputs, size_t output_count,
		      size_t memory_limit, uint32_t max_value_bytes,
		      struct kp_error *err)
{
	char **outs = NULL;
	int rc;

	memset(inst, 0, sizeof(*inst));
	if (config == NULL) {
		config = empty_map;
		config_len = sizeof(empty_map);
	}
	rc = check_config(config, config_len, err);
	if (rc != 0)
		return rc;
	inst->name = kp_strndup(name, strlen(name));
	inst->config = kp_malloc(config_len);
	if (inst->name == NULL || inst->config == NULL ||
	    copy_outputs(outputs, output_count, &outs) != 0) {
		release(inst);
		return kp_error_set(err, -ENOMEM, "%s: out of memory", name);
	}
	memcpy(inst->config, config, config_len);
	inst->config_len = config_len;
	kp_proc_code_ref(code);
	inst->code = code;
	kp_sink_init(&inst->sink, view, inst->name, (const char *const *)outs,
		     output_count);
	inst->sink.max_value_bytes = max_value_bytes;
	inst->ctx.host = kp_sink_host();
	inst->ctx.host_data = &inst->sink;
	inst->ctx.name = inst->name;
	inst->ctx.source = code->loaded_path;
	inst->ctx.config = inst->config;
	inst->ctx.config_len = inst->config_len;
	inst->ctx.user = NULL;
	inst->ctx.memory_limit = memory_limit;
	rc = run_init(inst, err);
	if (rc != 0) {
		release(inst);
		return rc;
	}
	inst->started = 1;
	if (strcmp(code->lang, "lua") == 0)
		kp_lua_use_packed_emit(&inst->ctx, kp_sink_emit_packed);
	return 0;
}

int kp_instance_process(struct kp_instance *inst,
			const struct kp_proc_record *rec, struct kp_error *err)
{
	char msg[KP_PROC_ERR_MAX];

	if (!inst->started)
		return kp_error_set(err, KP_ESTATE, "processor not started");
	msg[0] = '\0';
	inst->sink.record_ts = rec->ts;
	inst->sink.record_offset = rec->offset;
	kp_sink_begin_record(&inst->sink);
	if (inst->code->desc.process(&inst->ctx, rec, msg) == 0)
		return 0;
	kp_sink_abort_record(&inst->sink);
	return kp_error_set(err, KP_EINTERNAL, "%s",
			    proc_message(inst->code, msg));
}

/* kp_instance_run's state for a Lua run (struct kp_lua_feed's arg). */
struct lua_run {
	struct kp_instance *inst;
	const struct kp_record_feed *feed;
	struct kp_proc_record rec;
};

static int lua_run_next(void *arg, const struct kp_proc_record **rec)
{
	struct lua_run *r = arg;

	if (r->feed->next(r->feed->arg, &r->rec) != 1)
		return 0;
	r->inst->sink.record_ts = r->rec.ts;
	r->inst->sink.record_offset = r->rec.offset;
	kp_sink_begin_record(&r->inst->sink);
	*rec = &r->rec;
	return 1;
}

static void lua_run_fail(void *arg, const char *msg)
{
	struct lua_run *r = arg;
	char copy[KP_PROC_ERR_MAX];
	struct kp_error err;

	kp_sink_abort_record(&r->inst->sink);
	snprintf(copy, sizeof(copy), "%s", msg);
	kp_error_set(&err, KP_EINTERNAL, "%s",
		     proc_message(r->inst->code, copy));
	r->feed->failed(r->feed->arg, &r->rec, &err);
}

void kp_instance_run(struct kp_instance *inst,
		     const struct kp_record_feed *feed)
{
	struct kp_proc_record rec;
	struct kp_error err;

	if (inst->started && strcmp(inst->code->lang, "lua") == 0 &&
	    kp_lua_can_run(&inst->ctx)) {
		struct lua_run r = { inst, feed, { 0 } };
		struct kp_lua_feed lf = { lua_run_next, lua_run_fail, &r,
					  feed->base, feed->base_len };

		kp_lua_run(&inst->ctx, &lf);
		return;
	}
	while (feed->next(feed->arg, &rec) == 1) {
		kp_error_clear(&err);
		if (kp_instance_process(inst, &rec, &err) != 0)
			feed->failed(feed->arg, &rec, &err);
	}
}

void kp_instance_interrupt(struct kp_instance *inst)
{
	struct kp_proc_code *code = inst->code;

	if (code != NULL && code->desc.interrupt != NULL)
		code->desc.interrupt(&inst->ctx);
}

void kp_instance_stop(struct kp_instance *inst)
{
	if (inst == NULL)
		return;
	if (inst->started && inst->code->desc.fini != NULL)
		inst->code->desc.fini(&inst->ctx);
	release(inst);
}
