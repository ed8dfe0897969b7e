/*
 * test_proc_def.c - persisted processor definitions: the revisions of each
 * version (hash, file, code copy, time, what they were loaded over) and
 * the version a replay started from survive a save and a load; a
 * definition written before revisions were kept loads with its current
 * code as its one revision; past KP_PROC_MAX_REVISIONS the oldest go, never
 * the one a new revision is loaded over.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <msgpack.h>

#include "base/buf.h"
#include "base/error.h"
#include "base/fsutil.h"
#include "proc/proc_def.h"
#include "wire/proto.h"

static char tmp_dir[4096];

static int setup_dir(void **state)
{
	const char *t = getenv("KP_TEST_TMP");
	char cmd[4200];

	(void)state;
	snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", t ? t : "/tmp");
	if (system(cmd) != 0)
		return -1;
	snprintf(tmp_dir, sizeof(tmp_dir), "%s/proc_def.XXXXXX",
		 t ? t : "/tmp");
	return mkdtemp(tmp_dir) == NULL ? -1 : 0;
}

static int remove_dir(void **state)
{
	char cmd[4200];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp_dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* Makes dv's current code revision n from file, hash h, and notes it. */
static void load_revision(struct kp_proc_def_version *dv, uint32_t n,
			  const char *file, const char *h, uint32_t previous,
			  int64_t ms)
{
	dv->revision = n;
	snprintf(dv->source, sizeof(dv->source), "/src/%s", file);
	snprintf(dv->code, sizeof(dv->code), "data/code/%s/%s", h, file);
	snprintf(dv->hash, sizeof(dv->hash), "%s", h);
	assert_int_equal(kp_proc_def_revision_note(dv, previous, ms), 0);
}

static struct kp_proc_def_version *add_version(struct kp_proc_def *def,
					       uint32_t number,
					       const char *role)
{
	struct kp_proc_def_version *dv = &def->versions[def->version_count++];

	memset(dv, 0, sizeof(*dv));
	dv->number = number;
	snprintf(dv->role, sizeof(dv->role), "%s", role);
	dv->created_ms = 1000 * number;
	return dv;
}

static void test_revisions_survive_save_and_load(void **state)
{
	struct kp_proc_def def, back;
	struct kp_proc_def_version *dv;
	struct kp_proc_def_revision *r;
	struct kp_error err;

	(void)state;
	kp_proc_def_init(&def);
	snprintf(def.name, sizeof(def.name), "cnt");
	snprintf(def.source, sizeof(def.source), "/src/b.lua");
	def.next_version = 3;
	dv = add_version(&def, 1, "retired");
	load_revision(dv, 1, "a.lua", "00000000000000a1", 0, 1000);
	load_revision(dv, 2, "b.lua", "00000000000000b2", 1, 1500);
	load_revision(dv, 3, "c.lua", "00000000000000c3", 2, 1600);
	/* Rolled back to revision 2: its current code again. */
	r = kp_proc_def_revision(dv, 2);
	dv->revision = r->revision;
	snprintf(dv->hash, sizeof(dv->hash), "%s", r->hash);
	snprintf(dv->source, sizeof(dv->source), "%s", r->source);
	snprintf(dv->code, sizeof(dv->code), "%s", r->code);
	dv = add_version(&def, 2, "live");
	dv->previous_version = 1;
	load_revision(dv, 1, "b.lua", "00000000000000b2", 0, 2000);
	assert_int_equal(kp_proc_def_save(&def, tmp_dir), 0);

	kp_proc_def_init(&back);
	assert_int_equal(kp_proc_def_load(&back, tmp_dir, &err), 0);
	assert_int_equal(back.version_count, 2);
	dv = kp_proc_def_version(&back, 1);
	assert_non_null(dv);
	assert_int_equal(dv->revision, 2);
	assert_string_equal(dv->hash, "00000000000000b2");
	assert_int_equal(dv->previous_version, 0);
	assert_int_equal(dv->revision_count, 3);
	for (uint32_t i = 0; i < 3; i++) {
		r = &dv->revisions[i];
		assert_int_equal(r->revision, i + 1);
		assert_int_equal(r->previous, i);
	}
	r = kp_proc_def_revision(dv, 3);
	assert_non_null(r);
	assert_string_equal(r->hash, "00000000000000c3");
	assert_string_equal(r->source, "/src/c.lua");
	assert_string_equal(r->code, "data/code/00000000000000c3/c.lua");
	assert_int_equal(r->created_ms, 1600);
	assert_null(kp_proc_def_revision(dv, 4));
	dv = kp_proc_def_version(&back, 2);
	assert_non_null(dv);
	assert_int_equal(dv->previous_version, 1);
	assert_int_equal(dv->revision_count, 1);
	assert_int_equal(dv->revisions[0].created_ms, 2000);
	kp_proc_def_destroy(&back);
	kp_proc_def_destroy(&def);
}

static void pack_str(msgpack_packer *pk, const char *k, const char *v)
{
	msgpack_pack_str_with_body(pk, k, strlen(k));
	msgpack_pack_str_with_body(pk, v, strlen(v));
}

static void pack_int(msgpack_packer *pk, const char *k, int64_t v)
{
	msgpack_pack_str_with_body(pk, k, strlen(k));
	msgpack_pack_int64(pk, v);
}

/* A definition as servers wrote it before revisions were kept. */
static void write_old_definition(const char *dir)
{
	struct kp_buf out;
	msgpack_packer pk;
	char path[4200];

	kp_buf_init(&out);
	msgpack_packer_init(&pk, &out, kp_buf_msgpack_write);
	msgpack_pack_map(&pk, 19);
	pack_int(&pk, "format", 2);
	pack_str(&pk, "name", "old");
	pack_str(&pk, "source", "/src/old.lua");
	msgpack_pack_str_with_body(&pk, "inputs", 6);
	msgpack_pack_array(&pk, 1);
	msgpack_pack_str_with_body(&pk, "in", 2);
	msgpack_pack_str_with_body(&pk, "outputs", 7);
	msgpack_pack_array(&pk, 0);
	pack_int(&pk, "from", 0);
	pack_int(&pk, "from_ts", 0);
	msgpack_pack_str_with_body(&pk, "config", 6);
	msgpack_pack_bin_with_body(&pk, "\x80", 1);
	pack_int(&pk, "paused", 0);
	pack_str(&pk, "pause_reason", "");
	pack_int(&pk, "watch", 0);
	pack_int(&pk, "open_outputs", 1);
	msgpack_pack_str_with_body(&pk, "max_error_rate", 14);
	msgpack_pack_double(&pk, 0.5);
	pack_int(&pk, "error_window_min", 20);
	pack_int(&pk, "time_budget_ms", 5000);
	pack_int(&pk, "memory_limit", 1 << 20);
	pack_int(&pk, "created_ms", 7);
	pack_int(&pk, "next_version", 2);
	msgpack_pack_str_with_body(&pk, "versions", 8);
	msgpack_pack_array(&pk, 1);
	msgpack_pack_map(&pk, 11);
	pack_int(&pk, "number", 1);
	pack_str(&pk, "role", "live");
	pack_str(&pk, "source", "/src/old.lua");
	pack_str(&pk, "code", "data/code/00000000000000ff/old.lua");
	pack_str(&pk, "hash", "00000000000000ff");
	pack_int(&pk, "revision", 4);
	pack_int(&pk, "created_ms", 7);
	pack_int(&pk, "rate", 0);
	pack_int(&pk, "from", 0);
	pack_int(&pk, "from_value", 0);
	pack_int(&pk, "replay_total", 0);
	snprintf(path, sizeof(path), "%s/proc.def", dir);
	assert_int_equal(kp_file_write_atomic(path, out.data, out.len), 0);
	kp_buf_destroy(&out);
}

static void test_definition_without_revisions(void **state)
{
	struct kp_proc_def def;
	struct kp_proc_def_version *dv;
	struct kp_error err;

	(void)state;
	write_old_definition(tmp_dir);
	kp_proc_def_init(&def);
	assert_int_equal(kp_proc_def_load(&def, tmp_dir, &err), 0);
	dv = kp_proc_def_version(&def, 1);
	assert_non_null(dv);
	assert_int_equal(dv->previous_version, 0);
	assert_int_equal(dv->revision_count, 1);
	assert_int_equal(dv->revisions[0].revision, 4);
	assert_int_equal(dv->revisions[0].previous, 0);
	assert_string_equal(dv->revisions[0].hash, "00000000000000ff");
	assert_string_equal(dv->revisions[0].source, "/src/old.lua");
	assert_string_equal(dv->revisions[0].code,
			    "data/code/00000000000000ff/old.lua");
	assert_int_equal(dv->revisions[0].created_ms, 7);
	kp_proc_def_destroy(&def);
}

static void test_oldest_revisions_go_past_the_cap(void **state)
{
	struct kp_proc_def def;
	struct kp_proc_def_version *dv;
	char h[17];

	(void)state;
	kp_proc_def_init(&def);
	dv = add_version(&def, 1, "live");
	for (uint32_t n = 1; n <= KP_PROC_MAX_REVISIONS; n++) {
		snprintf(h, sizeof(h), "%016x", n);
		load_revision(dv, n, "a.lua", h, n - 1, n);
	}
	assert_int_equal(dv->revision_count, KP_PROC_MAX_REVISIONS);
	/* One more, loaded over revision 1 (rolled back to it): 2 goes. */
	load_revision(dv, KP_PROC_MAX_REVISIONS + 1, "a.lua", "ffff", 1, 0);
	assert_int_equal(dv->revision_count, KP_PROC_MAX_REVISIONS);
	assert_non_null(kp_proc_def_revision(dv, 1));
	assert_null(kp_proc_def_revision(dv, 2));
	/* Revision 3 was loaded over 2: now over what 2 was loaded over. */
	assert_int_equal(kp_proc_def_revision(dv, 3)->previous, 1);
	/* Another, over the newest: the oldest (1) goes now. */
	load_revision(dv, KP_PROC_MAX_REVISIONS + 2, "a.lua", "fffe",
		      KP_PROC_MAX_REVISIONS + 1, 0);
	assert_int_equal(dv->revision_count, KP_PROC_MAX_REVISIONS);
	assert_null(kp_proc_def_revision(dv, 1));
	assert_int_equal(kp_proc_def_revision(dv, 3)->previous, 0);
	assert_int_equal(kp_proc_def_revision(dv, KP_PROC_MAX_REVISIONS + 1)
			 ->previous, 0);
	assert_int_equal(dv->revisions[dv->revision_count - 1].revision,
			 KP_PROC_MAX_REVISIONS + 2);
	assert_int_equal(kp_proc_def_save(&def, tmp_dir), 0);
	kp_proc_def_destroy(&def);
}

/* BASE.vN names: the base's length, and N when it is a version's. */
static void test_version_base(void **state)
{
	uint32_t n = 99;

	(void)state;
	assert_int_equal(kp_proc_version_base("counts.v2", 9, &n), 6);
	assert_int_equal(n, 2);
	assert_int_equal(kp_proc_version_base("p.dlq.v17", 9, &n), 5);
	assert_int_equal(n, 17);
	assert_int_equal(kp_proc_version_base("x.v01", 5, &n), 1);
	assert_int_equal(n, 0);                 /* not a name we make */
	assert_int_equal(kp_proc_version_base("x.v99999999999", 14, &n), 1);
	assert_int_equal(n, 0);                 /* past 32 bits */
	assert_int_equal(kp_proc_version_base("counts", 6, NULL), 0);
	assert_int_equal(kp_proc_version_base(".v2", 3, NULL), 0);
	assert_int_equal(kp_proc_version_base("x.v", 3, NULL), 0);
	assert_int_equal(kp_proc_version_base("xv2", 3, NULL), 0);
	assert_int_equal(kp_proc_version_base("x.v2y", 5, NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_revisions_survive_save_and_load),
		cmocka_unit_test(test_definition_without_revisions),
		cmocka_unit_test(test_oldest_revisions_go_past_the_cap),
		cmocka_unit_test(test_version_base),
	};

	return cmocka_run_group_tests(tests, setup_dir, remove_dir);
}
