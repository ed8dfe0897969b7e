/*
 * test_proc_instance.c - running processors: count_by_user.so over a few
 * records gives the expected outputs and view; a failing record leaves no
 * emits and no state change; a failing init leaves no trace and no
 * reference; interrupt reaches the processor; config and outputs are
 * copied and enforced; the same logic in C and in Lua gives byte-identical
 * outputs and views.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/error.h"
#include "proc/proc_code.h"
#include "proc/proc_host.h"
#include "proc/proc_instance.h"
#include "proc/view.h"
#include "support_view.h"

struct fixture {
	struct kp_proc_code *count_by_user;
	struct kp_proc_code *failing;
	struct kp_view *view;
};

static struct kp_proc_code *load(const char *name)
{
	const char *dir = getenv("KP_TEST_PLUGIN_DIR");
	struct kp_proc_code *code = NULL;
	struct kp_error err;
	char path[4200];

	assert_non_null(dir);
	snprintf(path, sizeof(path), "%s/%s.so", dir, name);
	if (kp_proc_code_load(path, NULL, &code, &err) != 0)
		fail_msg("%s", err.msg);
	return code;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	f->count_by_user = load("count_by_user");
	f->failing = load("failing");
	assert_int_equal(kp_view_new(&f->view), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(f->count_by_user->refs, 1);
	assert_int_equal(f->failing->refs, 1);
	kp_proc_code_unref(f->count_by_user);
	kp_proc_code_unref(f->failing);
	kp_view_delete(f->view);
	free(f);
	return 0;
}

/* A record whose value is {"user": user} (user shorter than 32 bytes). */
struct rec_buf {
	struct kp_proc_record rec;
	char value[48];
};

static const struct kp_proc_record *user_rec(struct rec_buf *b,
					     uint64_t offset, const char *user)
{
	size_t n = strlen(user);

	memcpy(b->value, "\x81\xa4user", 6);
	b->value[6] = (char)(0xa0 | n);
	memcpy(b->value + 7, user, n);
	memset(&b->rec, 0, sizeof(b->rec));
	b->rec.topic = "clicks";
	b->rec.offset = offset;
	b->rec.ts = 1700000000000 + (int64_t)offset;
	b->rec.value = b->value;
	b->rec.value_len = 7 + n;
	return &b->rec;
}

/* Every key and value of the view in key order, to compare whole states. */
static void snapshot(struct kp_view *v, struct kp_buf *out)
{
	assert_int_equal(kp_test_view_dump(v, out), 0);
}

static void expect_count(struct kp_view *v, const char *key, int64_t want)
{
	int64_t n = -1;

	assert_int_equal(kp_view_incr(v, key, strlen(key), 0, &n), 0);
	assert_int_equal(n, want);
}

static void test_count_by_user(void **state)
{
	static const char *const users[] = { "ann", "bob", "ann", "cy", "ann" };
	static const char *const outputs[] = { "counts" };
	/* {"n": n, "user": u}: the Lua adapter's canonical pair order. */
	static const char *const want[] = {
		"\x82\xa1n\x01\xa4user\xa3" "ann", "\x82\xa1n\x01\xa4user\xa3" "bob",
		"\x82\xa1n\x02\xa4user\xa3" "ann", "\x82\xa1n\x01\xa4user\xa2" "cy",
		"\x82\xa1n\x03\xa4user\xa3" "ann",
	};
	struct fixture *f = *state;
	struct kp_instance inst;
	struct kp_error err;
	struct rec_buf b;
	struct kp_emit e;
	size_t pos = 0;

	assert_int_equal(kp_instance_start(&inst, f->count_by_user, "cbu",
					   f->view, NULL, 0, outputs, 1, 0,
					   0, &err), 0);
	assert_int_equal(f->count_by_user->refs, 2);
	assert_string_equal(inst.ctx.name, "cbu");
	assert_string_equal(inst.ctx.source, f->count_by_user->path);
	assert_int_equal(inst.ctx.config_len, 1);
	assert_int_equal((unsigned char)inst.ctx.config[0], 0x80);
	for (uint64_t i = 0; i < 5; i++)
		assert_int_equal(kp_instance_process(&inst,
						     user_rec(&b, i, users[i]),
						     &err), 0);
	for (int i = 0; i < 5; i++) {
		size_t n = strlen(users[i]);

		assert_int_equal(kp_sink_next_emit(&inst.sink, &pos, &e), 1);
		assert_int_equal(e.topic_len, 6);
		assert_memory_equal(e.topic, "counts", 6);
		assert_int_equal(e.key_len, n);
		assert_memory_equal(e.key, users[i], n);
		assert_int_equal(e.value_len, 10 + n);
		assert_memory_equal(e.value, want[i], e.value_len);
	}
	assert_int_equal(kp_sink_next_emit(&inst.sink, &pos, &e), 0);
	assert_int_equal(kp_view_count(f->view), 3);
	expect_count(f->view, "ann", 3);
	expect_count(f->view, "bob", 1);
	expect_count(f->view, "cy", 1);
	kp_instance_stop(&inst);
	assert_int_equal(f->count_by_user->refs, 1);
	kp_instance_stop(&inst);
}

static void test_bad_record(void **state)
{
	struct fixture *f = *state;
	struct kp_proc_record rec = { .topic = "clicks", .offset = 7,
				      .value = "\x81\xa4name\xa1x",
				      .value_len = 8 };
	struct kp_instance inst;
	struct kp_error err;
	struct rec_buf b;

	assert_int_equal(kp_instance_start(&inst, f->count_by_user, "cbu",
					   f->view, NULL, 0, NULL, 0, 0, 0, &err),
			 0);
	assert_int_equal(kp_instance_process(&inst, user_rec(&b, 6, "ann"),
					     &err), 0);
	assert_int_equal(kp_instance_process(&inst, &rec, &err), KP_EINTERNAL);
	assert_int_equal(err.code, KP_EINTERNAL);
	assert_string_equal(err.msg, "offset 7: value has no string field user");
	assert_int_equal(inst.sink.emit_count, 1);
	kp_instance_stop(&inst);
}

static void test_outputs_enforced(void **state)
{
	struct fixture *f = *state;
	struct kp_instance inst;
	struct kp_error err;
	struct rec_buf b;
	char other[] = "other";
	const char *outputs[] = { other };

	assert_int_equal(kp_instance_start(&inst, f->count_by_user, "cbu",
					   f->view, NULL, 0, outputs, 1, 0,
					   0, &err), 0);
	/* Outputs are copied: the caller's strings may change. */
	memcpy(other, "count", 5);
	assert_int_equal(kp_instance_process(&inst, user_rec(&b, 1, "ann"),
					     &err), KP_EINTERNAL);
	assert_string_equal(err.msg, "emit to counts failed");
	assert_int_equal(kp_view_count(f->view), 0);
	assert_int_equal(inst.sink.emit_count, 0);
	kp_instance_stop(&inst);
}

static void test_failing_record_is_atomic(void **state)
{
	struct fixture *f = *state;
	struct kp_buf before, after;
	struct kp_instance inst;
	struct kp_error err;
	struct rec_buf b;
	size_t emits_len;

	kp_buf_init(&before);
	kp_buf_init(&after);
	assert_int_equal(kp_instance_start(&inst, f->failing, "failing",
					   f->view, NULL, 0, NULL, 0, 0, 0, &err),
			 0);
	expect_count(f->view, "seen", 0);
	assert_int_equal(kp_view_del(f->view, "seen", 4), 1);
	assert_int_equal(kp_view_count(f->view), 1);  /* "init" */
	assert_int_equal(kp_instance_process(&inst, user_rec(&b, 1, "a"), &err),
			 0);
	assert_int_equal(kp_instance_process(&inst, user_rec(&b, 2, "b"), &err),
			 0);
	expect_count(f->view, "seen", 2);
	snapshot(f->view, &before);
	emits_len = inst.sink.emits.len;
	kp_error_clear(&err);
	assert_int_equal(kp_instance_process(&inst, user_rec(&b, 3, "c"), &err),
			 KP_EINTERNAL);
	assert_string_equal(err.msg, "offset 3 is divisible by 3");
	snapshot(f->view, &after);
	assert_int_equal(after.len, before.len);
	assert_memory_equal(after.data, before.data, before.len);
	assert_int_equal(inst.sink.emit_count, 2);
	assert_int_equal(inst.sink.emits.len, emits_len);
	/* The next record proceeds from the state before the failed one. */
	assert_int_equal(kp_instance_process(&inst, user_rec(&b, 4, "d"), &err),
			 0);
	expect_count(f->view, "seen", 3);
	assert_int_equal(inst.sink.emit_count, 3);
	/* Interrupt reaches the processor (from any thread; here, this one). */
	kp_instance_interrupt(&inst);
	assert_int_equal(kp_instance_process(&inst, user_rec(&b, 5, "e"), &err),
			 KP_EINTERNAL);
	assert_string_equal(err.msg, "interrupted");
	expect_count(f->view, "seen", 3);
	assert_int_equal(kp_instance_process(&inst, user_rec(&b, 5, "e"), &err),
			 0);
	kp_instance_stop(&inst);
	kp_buf_destroy(&before);
	kp_buf_destroy(&after);
}

static void test_failing_init(void **state)
{
	struct fixture *f = *state;
	struct kp_instance inst;
	struct kp_error err;
	struct rec_buf b;

	/* failing.so refuses a non-empty config after writing to the view. */
	assert_int_equal(kp_instance_start(&inst, f->failing, "failing",
					   f->view, "\x81\xa1" "a\x01", 4,
					   NULL, 0, 0, 0, &err), KP_EINTERNAL);
	assert_string_equal(err.msg, "init failed: config not accepted (4 bytes)");
	assert_int_equal(kp_view_count(f->view), 0);
	assert_int_equal(f->failing->refs, 1);
	assert_null(inst.code);
	assert_int_equal(inst.started, 0);
	assert_int_equal(kp_instance_process(&inst, user_rec(&b, 1, "a"), &err),
			 KP_ESTATE);
	kp_instance_stop(&inst);
	/* A config that is not one msgpack map is refused before init. */
	assert_int_equal(kp_instance_start(&inst, f->failing, "failing",
					   f->view, "\x92\x01\x02", 3, NULL, 0,
					   0, 0, &err), KP_ECONFIG);
	assert_int_equal(kp_instance_start(&inst, f->failing, "failing",
					   f->view, "\x80\x80", 2, NULL, 0, 0,
					   0, &err), KP_ECONFIG);
	assert_int_equal(f->failing->refs, 1);
	/* An explicit empty map is accepted and copied. */
	assert_int_equal(kp_instance_start(&inst, f->failing, "failing",
					   f->view, "\x80", 1, NULL, 0, 1 << 20,
					   0, &err), 0);
	assert_ptr_not_equal(inst.ctx.config, (const char *)"\x80");
	assert_int_equal(inst.ctx.memory_limit, 1 << 20);
	assert_int_equal(kp_view_count(f->view), 1);
	kp_instance_stop(&inst);
}

/* Runs code over records into view; appends every emit's bytes to out. */
static void run_users(struct kp_proc_code *code, struct kp_view *view,
		      const char *const *users, int n, struct kp_buf *out)
{
	static const char *const outputs[] = { "counts" };
	struct kp_instance inst;
	struct kp_error err;
	struct rec_buf b;
	struct kp_emit e;
	size_t pos = 0;

	if (kp_instance_start(&inst, code, "parity", view, NULL, 0, outputs, 1,
			      0, 0, &err) != 0)
		fail_msg("%s", err.msg);
	for (int i = 0; i < n; i++) {
		if (kp_instance_process(&inst, user_rec(&b, (uint64_t)i,
							users[i]), &err) != 0)
			fail_msg("%s", err.msg);
	}
	while (kp_sink_next_emit(&inst.sink, &pos, &e)) {
		kp_buf_append(out, e.topic, e.topic_len);
		kp_buf_append(out, "|", 1);
		kp_buf_append(out, e.key, e.key_len);
		kp_buf_append(out, "|", 1);
		kp_buf_append(out, e.value, e.value_len);
		kp_buf_append(out, "\n", 1);
	}
	kp_instance_stop(&inst);
}

/* count_by_user.so and the same logic in Lua: identical outputs and views. */
static void test_c_and_lua_agree(void **state)
{
	static const char *const users[] = {
		"ann", "bob", "ann", "cy", "ann", "bob", "a-much-longer-user-name-x",
		"ann", "cy",
	};
	static const char source[] =
		"local M = {}\n"
		"function M.process(ctx, rec)\n"
		"  local u = rec.value.user\n"
		"  local n = ctx.state:incr(u, 1)\n"
		"  ctx:emit(\"counts\", { user = u, n = n }, u)\n"
		"end\n"
		"return M\n";
	struct fixture *f = *state;
	const char *tmp = getenv("KP_TEST_TMP");
	struct kp_buf c_out, lua_out, c_snap, lua_snap;
	struct kp_proc_code *lua = NULL;
	struct kp_view *lua_view;
	struct kp_error err;
	char path[4200], cmd[4300];
	FILE *file;
	int n = (int)(sizeof(users) / sizeof(users[0]));

	snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", tmp ? tmp : "/tmp");
	assert_int_equal(system(cmd), 0);
	snprintf(path, sizeof(path), "%s/count_by_user.%ld.lua",
		 tmp ? tmp : "/tmp", (long)getpid());
	file = fopen(path, "w");
	assert_non_null(file);
	fputs(source, file);
	assert_int_equal(fclose(file), 0);
	if (kp_proc_code_load(path, NULL, &lua, &err) != 0)
		fail_msg("%s", err.msg);
	assert_int_equal(kp_view_new(&lua_view), 0);
	kp_buf_init(&c_out);
	kp_buf_init(&lua_out);
	kp_buf_init(&c_snap);
	kp_buf_init(&lua_snap);
	run_users(f->count_by_user, f->view, users, n, &c_out);
	run_users(lua, lua_view, users, n, &lua_out);
	assert_true(c_out.len > 0);
	assert_int_equal(lua_out.len, c_out.len);
	assert_memory_equal(lua_out.data, c_out.data, c_out.len);
	snapshot(f->view, &c_snap);
	snapshot(lua_view, &lua_snap);
	assert_int_equal(lua_snap.len, c_snap.len);
	assert_memory_equal(lua_snap.data, c_snap.data, c_snap.len);
	expect_count(lua_view, "ann", 4);
	kp_buf_destroy(&c_out);
	kp_buf_destroy(&lua_out);
	kp_buf_destroy(&c_snap);
	kp_buf_destroy(&lua_snap);
	kp_view_delete(lua_view);
	kp_proc_code_unref(lua);
	unlink(path);
}

/* The example examples/c/topk.c, when the examples were built. */
static void test_example_topk(void **state)
{
	static const char config[] = "\x82\xa6output\xa6" "alerts"
				     "\xaathresholds\x92\x02\x03";
	static const char *const outputs[] = { "alerts" };
	static const char *const users[] = { "ann", "bob", "ann", "ann", "ann" };
	static const char want[] = "\x83\xa5" "count\x02\xa3key\xa3" "ann"
				   "\xa9threshold\x02";
	const char *dir = getenv("KP_EXAMPLES_BUILD_DIR");
	struct fixture *f = *state;
	struct kp_proc_record keyed = { .topic = "t", .offset = 9, .key = "k",
					.key_len = 1, .value = "\x05",
					.value_len = 1 };
	struct kp_proc_code *code = NULL;
	struct kp_instance inst;
	struct kp_error err;
	struct rec_buf b;
	struct kp_emit e;
	char path[4200];
	size_t pos = 0;

	snprintf(path, sizeof(path), "%s/topk.so", dir ? dir : ".");
	if (dir == NULL || access(path, R_OK) != 0)
		skip();
	assert_int_equal(kp_proc_code_load(path, NULL, &code, &err), 0);
	assert_int_equal(kp_instance_start(&inst, code, "topk", f->view,
					   "\x81\xaathresholds\xa1x", 14,
					   outputs, 1, 0, 0, &err), KP_EINTERNAL);
	assert_non_null(strstr(err.msg, "init failed: config:"));
	assert_int_equal(kp_instance_start(&inst, code, "topk", f->view,
					   config, sizeof(config) - 1,
					   outputs, 1, 0, 0, &err), 0);
	for (uint64_t i = 0; i < 5; i++)
		assert_int_equal(kp_instance_process(&inst,
						     user_rec(&b, i, users[i]),
						     &err), 0);
	assert_int_equal(kp_instance_process(&inst, &keyed, &err), 0);
	keyed.key = NULL;
	assert_int_equal(kp_instance_process(&inst, &keyed, &err),
			 KP_EINTERNAL);
	assert_string_equal(err.msg,
			    "offset 9: no string field \"user\" and no key");
	expect_count(f->view, "ann", 4);
	expect_count(f->view, "bob", 1);
	expect_count(f->view, "k", 1);
	assert_int_equal(inst.sink.emit_count, 2);
	assert_int_equal(kp_sink_next_emit(&inst.sink, &pos, &e), 1);
	assert_memory_equal(e.topic, "alerts", 6);
	assert_memory_equal(e.key, "ann", 3);
	assert_int_equal(e.value_len, sizeof(want) - 1);
	assert_memory_equal(e.value, want, sizeof(want) - 1);
	assert_int_equal(kp_sink_next_emit(&inst.sink, &pos, &e), 1);
	assert_int_equal((unsigned char)e.value[7], 3);
	kp_instance_stop(&inst);
	kp_proc_code_unref(code);
}

static void test_stop_never_started(void **state)
{
	struct kp_instance inst;

	memset(&inst, 0, sizeof(inst));
	kp_instance_interrupt(&inst);
	kp_instance_stop(&inst);
	kp_instance_stop(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_count_by_user, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_bad_record, setup, teardown),
		cmocka_unit_test_setup_teardown(test_outputs_enforced, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_failing_record_is_atomic,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_failing_init, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_c_and_lua_agree, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_example_topk, setup,
						teardown),
		cmocka_unit_test(test_stop_never_started),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
