/*
 * test_proc_code.c - loading processor code: real test plugins (built
 * under tests/plugins into $KP_TEST_PLUGIN_DIR) are loaded, refused for
 * another ABI major or a missing process callback, copied to
 * content-addressed paths so that a replaced file loads beside the old one,
 * and Lua files get the Lua adapter's descriptor.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/error.h"
#include "luahost/lua_adapter.h"
#include "proc/proc_code.h"
#include "proc/proc_host.h"
#include "proc/view.h"

static char plugin_dir[4096];
static char tmp_dir[4096];

static void plugin_path(char *out, size_t size, const char *name)
{
	snprintf(out, size, "%s/%s.so", plugin_dir, name);
}

static void copy_file(const char *from, const char *to)
{
	char buf[65536];
	FILE *in = fopen(from, "rb"), *out;
	size_t n;

	assert_non_null(in);
	out = fopen(to, "wb");
	assert_non_null(out);
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		assert_int_equal(fwrite(buf, 1, n, out), n);
	fclose(in);
	assert_int_equal(fclose(out), 0);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

static int setup_dirs(void **state)
{
	const char *p = getenv("KP_TEST_PLUGIN_DIR");
	const char *t = getenv("KP_TEST_TMP");
	char cmd[4200];

	if (p == NULL) {
		fprintf(stderr, "KP_TEST_PLUGIN_DIR is not set\n");
		return -1;
	}
	snprintf(plugin_dir, sizeof(plugin_dir), "%s", p);
	snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", t ? t : "/tmp");
	if (system(cmd) != 0)
		return -1;
	snprintf(tmp_dir, sizeof(tmp_dir), "%s/proc_code.XXXXXX",
		 t ? t : "/tmp");
	return mkdtemp(tmp_dir) == NULL ? -1 : 0;
}

static int remove_dirs(void **state)
{
	char cmd[4200];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp_dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void test_load_plugin(void **state)
{
	struct kp_proc_code *code = NULL;
	struct kp_error err;
	char path[4200], dir[4200], want[4300], hex[17];
	struct stat st;

	plugin_path(path, sizeof(path), "count_by_user");
	snprintf(dir, sizeof(dir), "%s/code/nested", tmp_dir);
	assert_int_equal(kp_proc_code_load(path, dir, &code, &err), 0);
	assert_string_equal(code->lang, "c");
	assert_string_equal(code->path, path);
	assert_non_null(code->dl);
	assert_int_equal(code->refs, 1);
	assert_int_equal(code->desc.abi_version, KP_PROC_ABI_VERSION);
	assert_int_equal(code->desc.size, sizeof(struct kp_processor));
	assert_string_equal(code->desc.name, "count_by_user");
	assert_non_null(code->desc.process);
	assert_null(code->desc.init);
	assert_int_equal(kp_proc_code_hash_file(path, hex), 0);
	assert_string_equal(code->hash, hex);
	snprintf(want, sizeof(want), "%s/%s.so", dir, hex);
	assert_string_equal(code->loaded_path, want);
	assert_int_equal(stat(want, &st), 0);
	kp_proc_code_ref(code);
	assert_int_equal(code->refs, 2);
	kp_proc_code_unref(code);
	kp_proc_code_unref(code);
	kp_proc_code_ref(NULL);
	kp_proc_code_unref(NULL);
	/* In place: loaded from the given path. */
	assert_int_equal(kp_proc_code_load(path, NULL, &code, &err), 0);
	assert_string_equal(code->loaded_path, path);
	kp_proc_code_unref(code);
}

static void test_refusals(void **state)
{
	struct kp_proc_code *code = NULL;
	struct kp_error err;
	char path[4200], want[64];

	plugin_path(path, sizeof(path), "bad_abi");
	kp_error_clear(&err);
	assert_int_equal(kp_proc_code_load(path, tmp_dir, &code, &err),
			 KP_ECONFIG);
	assert_null(code);
	assert_int_equal(err.code, KP_ECONFIG);
	assert_non_null(strstr(err.msg, path));
	assert_non_null(strstr(err.msg, "processor ABI 99.3"));
	snprintf(want, sizeof(want), "this server speaks %d.%d",
		 KP_PROC_ABI_MAJOR, KP_PROC_ABI_MINOR);
	assert_non_null(strstr(err.msg, want));

	plugin_path(path, sizeof(path), "no_process");
	assert_int_equal(kp_proc_code_load(path, tmp_dir, &code, &err),
			 KP_ECONFIG);
	assert_non_null(strstr(err.msg, "no process callback"));

	assert_int_equal(kp_proc_code_load("proc.py", NULL, &code, &err),
			 KP_ECONFIG);
	assert_non_null(strstr(err.msg, "proc.py"));
	assert_non_null(strstr(err.msg, ".lua"));
	assert_non_null(strstr(err.msg, ".so"));

	snprintf(path, sizeof(path), "%s/missing.so", tmp_dir);
	assert_int_equal(kp_proc_code_load(path, tmp_dir, &code, &err),
			 -ENOENT);
	assert_non_null(strstr(err.msg, "missing.so"));

	snprintf(path, sizeof(path), "%s/garbage.so", tmp_dir);
	write_file(path, "not an ELF file");
	assert_int_equal(kp_proc_code_load(path, NULL, &code, &err),
			 KP_ECONFIG);
	assert_non_null(strstr(err.msg, "cannot load"));
	assert_null(code);
}

static void test_short_descriptor(void **state)
{
	struct kp_proc_code *code = NULL;
	struct kp_error err;
	char path[4200];

	plugin_path(path, sizeof(path), "short_desc");
	assert_int_equal(kp_proc_code_load(path, tmp_dir, &code, &err), 0);
	assert_int_equal(code->desc.size,
			 offsetof(struct kp_processor, interrupt));
	assert_non_null(code->desc.process);
	assert_null(code->desc.interrupt);
	kp_proc_code_unref(code);
}

/* Runs a loaded count_by_user once over a fresh view; returns the count. */
static int64_t run_count_by_user(struct kp_proc_code *code)
{
	struct kp_proc_record rec = {
		.topic = "clicks", .value = "\x81\xa4user\xa3" "ann",
		.value_len = 10,
	};
	struct kp_proc_ctx ctx;
	struct kp_view *view;
	struct kp_sink sink;
	char msg[KP_PROC_ERR_MAX];
	int64_t n = -1;

	assert_int_equal(kp_view_new(&view), 0);
	kp_sink_init(&sink, view, "t", NULL, 0);
	memset(&ctx, 0, sizeof(ctx));
	ctx.host = kp_sink_host();
	ctx.host_data = &sink;
	kp_sink_begin_record(&sink);
	assert_int_equal(code->desc.process(&ctx, &rec, msg), 0);
	assert_int_equal(kp_view_incr(view, "ann", 3, 0, &n), 0);
	kp_sink_destroy(&sink);
	kp_view_delete(view);
	return n;
}

static void test_replaced_file(void **state)
{
	struct kp_proc_code *a = NULL, *b = NULL, *c = NULL;
	struct kp_error err;
	char src[4200], work[4200], dir[4200];

	snprintf(work, sizeof(work), "%s/proc.so", tmp_dir);
	snprintf(dir, sizeof(dir), "%s/code", tmp_dir);
	plugin_path(src, sizeof(src), "count_by_user");
	copy_file(src, work);
	assert_int_equal(kp_proc_code_load(work, dir, &a, &err), 0);
	/* Same bytes, same path: loading again shares the copy. */
	assert_int_equal(kp_proc_code_load(work, dir, &c, &err), 0);
	assert_string_equal(c->hash, a->hash);
	assert_string_equal(c->loaded_path, a->loaded_path);
	kp_proc_code_unref(c);
	/* The file changes: a new hash, a new path, a new library. */
	plugin_path(src, sizeof(src), "failing");
	copy_file(src, work);
	assert_int_equal(kp_proc_code_load(work, dir, &b, &err), 0);
	assert_string_not_equal(b->hash, a->hash);
	assert_string_not_equal(b->loaded_path, a->loaded_path);
	assert_string_equal(b->desc.name, "failing");
	assert_string_equal(a->desc.name, "count_by_user");
	/* The old code stays usable until its last reference goes. */
	assert_int_equal(run_count_by_user(a), 1);
	kp_proc_code_unref(b);
	assert_int_equal(run_count_by_user(a), 1);
	kp_proc_code_unref(a);
}

static void test_hash(void **state)
{
	char path[4200], hex[17], again[17];

	snprintf(path, sizeof(path), "%s/h.txt", tmp_dir);
	write_file(path, "");
	assert_int_equal(kp_proc_code_hash_file(path, hex), 0);
	assert_string_equal(hex, "cbf29ce484222325");
	write_file(path, "a");
	assert_int_equal(kp_proc_code_hash_file(path, hex), 0);
	assert_string_equal(hex, "af63dc4c8601ec8c");
	write_file(path, "foobar");
	assert_int_equal(kp_proc_code_hash_file(path, hex), 0);
	assert_string_equal(hex, "85944171f73967e8");
	assert_int_equal(kp_proc_code_hash_file(path, again), 0);
	assert_string_equal(again, hex);
	snprintf(path, sizeof(path), "%s/none", tmp_dir);
	assert_int_equal(kp_proc_code_hash_file(path, hex), -ENOENT);
}

static void test_lua(void **state)
{
	struct kp_proc_code *code = NULL;
	struct kp_error err;
	char path[4200], hex[17];

	snprintf(path, sizeof(path), "%s/p.lua", tmp_dir);
	write_file(path, "local M = {}\n"
			 "function M.process(ctx, rec) end\n"
			 "return M\n");
	assert_int_equal(kp_proc_code_load(path, tmp_dir, &code, &err), 0);
	assert_string_equal(code->lang, "lua");
	assert_null(code->dl);
	assert_int_equal(kp_proc_code_hash_file(path, hex), 0);
	assert_string_equal(code->hash, hex);
	{
		/* It runs from its own copy, named after the file. */
		char copy[4300];

		snprintf(copy, sizeof(copy), "%s/%s/p.lua", tmp_dir, hex);
		assert_string_equal(code->loaded_path, copy);
		assert_int_equal(kp_proc_code_hash_file(copy, hex), 0);
		assert_string_equal(code->hash, hex);
	}
	assert_ptr_equal(code->desc.process, kp_lua_processor()->process);
	assert_ptr_equal(code->desc.init, kp_lua_processor()->init);
	kp_proc_code_unref(code);
	snprintf(path, sizeof(path), "%s/absent.lua", tmp_dir);
	assert_int_equal(kp_proc_code_load(path, NULL, &code, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "absent.lua"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_load_plugin),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_short_descriptor),
		cmocka_unit_test(test_replaced_file),
		cmocka_unit_test(test_hash),
		cmocka_unit_test(test_lua),
	};

	return cmocka_run_group_tests(tests, setup_dirs, remove_dirs);
}
