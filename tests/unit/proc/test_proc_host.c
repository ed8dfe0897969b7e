/*
 * test_proc_host.c - the host services over a sink: emits are buffered and
 * read back in order, outputs are enforced, state calls reach the view,
 * and aborting a record restores every key it touched and drops its emits
 * while earlier records' work stays.
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

#include "base/alloc.h"
#include "base/buf.h"
#include "base/error.h"
#include "proc/proc_host.h"
#include "proc/view.h"
#include "support_view.h"

struct fixture {
	struct kp_view *view;
	struct kp_sink sink;
	const struct kp_proc_host *h;
	void *hd;
};

static const char *const outputs[] = { "alerts", "counts" };

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_int_equal(kp_view_new(&f->view), 0);
	kp_sink_init(&f->sink, f->view, "proc-a", outputs, 2);
	f->h = kp_sink_host();
	f->hd = &f->sink;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	kp_sink_destroy(&f->sink);
	kp_view_delete(f->view);
	free(f);
	return 0;
}

/* The view's snapshot bytes, to compare whole states. */
/* Every key and value of the view in key order, to compare whole states. */
static void snapshot(struct kp_view *v, struct kp_buf *out)
{
	assert_int_equal(kp_test_view_dump(v, out), 0);
}

static void test_host_table(void **state)
{
	const struct kp_proc_host *h = kp_sink_host();

	assert_int_equal(h->size, sizeof(struct kp_proc_host));
	assert_non_null(h->emit);
	assert_non_null(h->state_get);
	assert_non_null(h->state_put);
	assert_non_null(h->state_incr);
	assert_non_null(h->state_del);
	assert_non_null(h->state_scan);
	assert_non_null(h->log);
}

static void test_emits(void **state)
{
	struct fixture *f = *state;
	struct kp_emit e;
	size_t pos = 0;

	kp_sink_begin_record(&f->sink);
	assert_int_equal(f->h->emit(f->hd, "alerts", 6, "k1", 2, "\xa1x", 2), 0);
	assert_int_equal(f->h->emit(f->hd, "counts", 6, NULL, 0, "\x2a", 1), 0);
	assert_int_equal(f->h->emit(f->hd, "counts", 6, "", 0, "\xc0", 1), 0);
	assert_int_equal(f->sink.emit_count, 3);
	assert_int_equal(kp_sink_next_emit(&f->sink, &pos, &e), 1);
	assert_int_equal(e.topic_len, 6);
	assert_memory_equal(e.topic, "alerts", 6);
	assert_int_equal(e.key_len, 2);
	assert_memory_equal(e.key, "k1", 2);
	assert_int_equal(e.value_len, 2);
	assert_memory_equal(e.value, "\xa1x", 2);
	assert_int_equal(kp_sink_next_emit(&f->sink, &pos, &e), 1);
	assert_memory_equal(e.topic, "counts", 6);
	assert_null(e.key);
	assert_int_equal(e.key_len, 0);
	assert_int_equal(e.value[0], 0x2a);
	assert_int_equal(kp_sink_next_emit(&f->sink, &pos, &e), 1);
	assert_non_null(e.key);
	assert_int_equal(e.key_len, 0);
	assert_int_equal(kp_sink_next_emit(&f->sink, &pos, &e), 0);
	/* Refused: not an output, not one msgpack object, no topic. */
	assert_int_equal(f->h->emit(f->hd, "other", 5, NULL, 0, "\x01", 1),
			 KP_ENOTOPIC);
	assert_int_equal(f->h->emit(f->hd, "alert", 5, NULL, 0, "\x01", 1),
			 KP_ENOTOPIC);
	assert_int_equal(f->h->emit(f->hd, "alerts", 6, NULL, 0, "\x92\x01", 2),
			 KP_EBADMSGPACK);
	assert_int_equal(f->h->emit(f->hd, "alerts", 6, NULL, 0, "\x01\x02", 2),
			 KP_EBADMSGPACK);
	assert_int_equal(f->h->emit(f->hd, "", 0, NULL, 0, "\x01", 1),
			 KP_EBADTOPIC);
	assert_int_equal(f->sink.emit_count, 3);
	kp_sink_clear_emits(&f->sink);
	pos = 0;
	assert_int_equal(kp_sink_next_emit(&f->sink, &pos, &e), 0);
	assert_int_equal(f->sink.emit_count, 0);
}

static void test_any_output(void **state)
{
	struct kp_view *v;
	struct kp_sink sink;

	assert_int_equal(kp_view_new(&v), 0);
	kp_sink_init(&sink, v, "free", NULL, 0);
	kp_sink_begin_record(&sink);
	assert_int_equal(kp_sink_host()->emit(&sink, "anything", 8, NULL, 0,
					      "\x01", 1), 0);
	assert_int_equal(sink.emit_count, 1);
	kp_sink_destroy(&sink);
	kp_sink_destroy(NULL);
	kp_view_delete(v);
}

/* The claim of a processor without declared outputs: "taken" exists. */
static int claim_taken(void *arg, const char *topic, size_t len)
{
	(*(int *)arg)++;
	return len == 5 && memcmp(topic, "taken", 5) == 0 ? KP_ENOTOWNER : 0;
}

static void test_owned_outputs(void **state)
{
	static const char *const owned[] = { "mine" };
	struct kp_view *v;
	struct kp_sink sink;
	int asked = 0;

	assert_int_equal(kp_view_new(&v), 0);
	kp_sink_init(&sink, v, "open", NULL, 0);
	sink.owned = owned;
	sink.owned_count = 1;
	sink.claim = claim_taken;
	sink.claim_arg = &asked;
	kp_sink_begin_record(&sink);
	/* Its own topic: no question asked. */
	assert_int_equal(kp_sink_host()->emit(&sink, "mine", 4, NULL, 0,
					      "\x01", 1), 0);
	assert_int_equal(asked, 0);
	/* A new topic may become an output; an existing one may not. */
	assert_int_equal(kp_sink_host()->emit(&sink, "fresh", 5, NULL, 0,
					      "\x01", 1), 0);
	assert_int_equal(kp_sink_host()->emit(&sink, "taken", 5, NULL, 0,
					      "\x01", 1), KP_ENOTOWNER);
	assert_int_equal(asked, 2);
	/* Names that cannot be topics are refused before anything else. */
	assert_int_equal(kp_sink_host()->emit(&sink, "../evil", 7, NULL, 0,
					      "\x01", 1), KP_EBADTOPIC);
	assert_int_equal(kp_sink_host()->emit(&sink, "a/b", 3, NULL, 0,
					      "\x01", 1), KP_EBADTOPIC);
	assert_int_equal(kp_sink_host()->emit(&sink, "x\0y", 3, NULL, 0,
					      "\x01", 1), KP_EBADTOPIC);
	assert_int_equal(asked, 2);
	assert_int_equal(sink.emit_count, 2);
	kp_sink_destroy(&sink);
	kp_view_delete(v);
}

/*
 * The packed emit skips the value's walk and nothing else; the table's
 * emit still walks every value, and the remembered topic name never lets
 * a different name through.
 */
static void test_packed_emit(void **state)
{
	struct fixture *f = *state;

	kp_sink_begin_record(&f->sink);
	assert_int_equal(kp_sink_emit_packed(f->hd, "alerts", 6, "k", 1,
					     "\x01", 1), 0);
	assert_int_equal(f->h->emit(f->hd, "alerts", 6, NULL, 0, "\x92\x01",
				    2), KP_EBADMSGPACK);
	assert_int_equal(f->h->emit(f->hd, "alerts", 6, NULL, 0, "\x01\x02",
				    2), KP_EBADMSGPACK);
	assert_int_equal(kp_sink_emit_packed(f->hd, "alerts\0", 7, NULL, 0,
					     "\x01", 1), KP_EBADTOPIC);
	assert_int_equal(kp_sink_emit_packed(f->hd, "alert!", 6, NULL, 0,
					     "\x01", 1), KP_EBADTOPIC);
	assert_int_equal(kp_sink_emit_packed(f->hd, "alert", 5, NULL, 0,
					     "\x01", 1), KP_ENOTOPIC);
	assert_int_equal(kp_sink_emit_packed(f->hd, "", 0, NULL, 0, "\x01", 1),
			 KP_EBADTOPIC);
	assert_int_equal(f->h->emit(f->hd, "counts", 6, NULL, 0, "\x02", 1), 0);
	assert_int_equal(kp_sink_emit_packed(f->hd, "alerts", 6, NULL, 0,
					     "\x03", 1), 0);
	assert_int_equal(f->sink.emit_count, 3);
}

static void test_state(void **state)
{
	struct fixture *f = *state;
	const char *val;
	size_t len;
	int64_t r;

	kp_sink_begin_record(&f->sink);
	assert_int_equal(f->h->state_get(f->hd, "a", 1, &val, &len), 0);
	assert_int_equal(f->h->state_put(f->hd, "a", 1, "\xa2hi", 3), 0);
	assert_int_equal(f->h->state_get(f->hd, "a", 1, &val, &len), 1);
	assert_int_equal(len, 3);
	assert_memory_equal(val, "\xa2hi", 3);
	assert_ptr_equal(val, f->sink.scratch.data);
	assert_int_equal(f->h->state_incr(f->hd, "n", 1, 4, &r), 0);
	assert_int_equal(r, 4);
	assert_int_equal(f->h->state_incr(f->hd, "n", 1, -1, &r), 0);
	assert_int_equal(r, 3);
	assert_int_equal(f->h->state_incr(f->hd, "a", 1, 1, &r),
			 KP_EBADREQUEST);
	assert_int_equal(f->h->state_put(f->hd, "b", 1, "\x92\x01", 2),
			 KP_EBADMSGPACK);
	assert_int_equal(f->h->state_put(f->hd, "b", 1, NULL, 0),
			 KP_EBADMSGPACK);
	assert_int_equal(f->h->state_del(f->hd, "a", 1), 0);
	assert_int_equal(f->h->state_del(f->hd, "a", 1), 0);
	assert_int_equal(f->h->state_get(f->hd, "a", 1, &val, &len), 0);
	assert_int_equal(f->h->state_put(f->hd, NULL, 0, "\x01", 1), 0);
	assert_int_equal(f->h->state_get(f->hd, "", 0, &val, &len), 1);
	assert_int_equal(f->h->state_put(f->hd, NULL, 3, "\x01", 1),
			 KP_EBADREQUEST);
	assert_int_equal(kp_view_count(f->view), 2);
}

struct collected {
	char keys[8][8];
	int n;
};

static int collect(void *arg, const char *key, size_t key_len,
		   const char *value, size_t value_len)
{
	struct collected *c = arg;

	memcpy(c->keys[c->n], key, key_len);
	c->keys[c->n][key_len] = '\0';
	c->n++;
	return 0;
}

static void test_scan(void **state)
{
	struct fixture *f = *state;
	struct collected c;

	kp_sink_begin_record(&f->sink);
	assert_int_equal(f->h->state_put(f->hd, "u:b", 3, "\x01", 1), 0);
	assert_int_equal(f->h->state_put(f->hd, "u:a", 3, "\x01", 1), 0);
	assert_int_equal(f->h->state_put(f->hd, "v", 1, "\x01", 1), 0);
	memset(&c, 0, sizeof(c));
	assert_int_equal(f->h->state_scan(f->hd, "u:", 2, 0, collect, &c), 0);
	assert_int_equal(c.n, 2);
	assert_string_equal(c.keys[0], "u:a");
	assert_string_equal(c.keys[1], "u:b");
	memset(&c, 0, sizeof(c));
	assert_int_equal(f->h->state_scan(f->hd, NULL, 0, 1, collect, &c), 0);
	assert_int_equal(c.n, 1);
	assert_int_equal(f->h->state_scan(f->hd, "u", 1, 0, NULL, NULL),
			 KP_EBADREQUEST);
}

static void test_abort_restores(void **state)
{
	struct fixture *f = *state;
	struct kp_buf before, after;
	struct kp_emit e;
	size_t pos = 0, emits_len;
	int64_t r;

	kp_buf_init(&before);
	kp_buf_init(&after);
	/* Record 1 commits: its state and its emit stay. */
	kp_sink_begin_record(&f->sink);
	assert_int_equal(f->h->state_put(f->hd, "a", 1, "\x01", 1), 0);
	assert_int_equal(f->h->state_put(f->hd, "b", 1, "\xa1x", 2), 0);
	assert_int_equal(f->h->state_put(f->hd, "big", 3, "\xa3" "abc", 4), 0);
	assert_int_equal(f->h->emit(f->hd, "counts", 6, "a", 1, "\x01", 1), 0);
	snapshot(f->view, &before);
	emits_len = f->sink.emits.len;
	/* Record 2 touches everything, some keys many times, then aborts. */
	kp_sink_begin_record(&f->sink);
	assert_int_equal(f->h->state_put(f->hd, "a", 1, "\x02", 1), 0);
	assert_int_equal(f->h->state_incr(f->hd, "a", 1, 40, &r), 0);
	assert_int_equal(f->h->state_del(f->hd, "b", 1), 0);
	assert_int_equal(f->h->state_put(f->hd, "b", 1, "\xa2yz", 3), 0);
	assert_int_equal(f->h->state_put(f->hd, "c", 1, "\xc3", 1), 0);
	assert_int_equal(f->h->state_incr(f->hd, "d", 1, 7, &r), 0);
	assert_int_equal(f->h->state_del(f->hd, "d", 1), 0);
	assert_int_equal(f->h->state_incr(f->hd, "d", 1, 8, &r), 0);
	assert_int_equal(f->h->state_put(f->hd, "big", 3,
					 "\xb0" "0123456789abcdef", 17), 0);
	assert_int_equal(f->h->state_del(f->hd, "big", 3), 0);
	assert_int_equal(f->h->state_incr(f->hd, "b", 1, 1, &r),
			 KP_EBADREQUEST);
	assert_int_equal(f->h->emit(f->hd, "alerts", 6, NULL, 0, "\x02", 1), 0);
	assert_int_equal(f->h->emit(f->hd, "alerts", 6, NULL, 0, "\x03", 1), 0);
	assert_int_equal(f->sink.emit_count, 3);
	snapshot(f->view, &after);
	assert_false(after.len == before.len &&
		     memcmp(after.data, before.data, after.len) == 0);
	kp_sink_abort_record(&f->sink);
	snapshot(f->view, &after);
	assert_int_equal(after.len, before.len);
	assert_memory_equal(after.data, before.data, before.len);
	assert_int_equal(f->sink.emit_count, 1);
	assert_int_equal(f->sink.emits.len, emits_len);
	assert_int_equal(kp_sink_next_emit(&f->sink, &pos, &e), 1);
	assert_memory_equal(e.key, "a", 1);
	assert_int_equal(kp_sink_next_emit(&f->sink, &pos, &e), 0);
	/* An abort right after begin changes nothing; so does a second one. */
	kp_sink_begin_record(&f->sink);
	kp_sink_abort_record(&f->sink);
	kp_sink_abort_record(&f->sink);
	snapshot(f->view, &after);
	assert_memory_equal(after.data, before.data, before.len);
	assert_int_equal(f->sink.emit_count, 1);
	kp_buf_destroy(&before);
	kp_buf_destroy(&after);
}

static void test_abort_after_alloc_failure(void **state)
{
	struct fixture *f = *state;
	struct kp_buf before, after;
	int rc;

	kp_buf_init(&before);
	kp_buf_init(&after);
	kp_sink_begin_record(&f->sink);
	assert_int_equal(f->h->state_put(f->hd, "x", 1, "\x01", 1), 0);
	snapshot(f->view, &before);
	for (long n = 0; n < 12; n++) {
		kp_sink_begin_record(&f->sink);
		kp_alloc_fail_after(n);
		rc = f->h->state_put(f->hd, "x", 1, "\xb0" "0123456789abcdef",
				     17);
		if (rc == 0)
			rc = f->h->state_put(f->hd, "y", 1, "\x02", 1);
		if (rc == 0)
			rc = f->h->emit(f->hd, "alerts", 6, NULL, 0, "\x02", 1);
		kp_alloc_fail_after(-1);
		assert_true(rc == 0 || rc == -ENOMEM);
		kp_sink_abort_record(&f->sink);
		snapshot(f->view, &after);
		assert_int_equal(after.len, before.len);
		assert_memory_equal(after.data, before.data, before.len);
		assert_int_equal(f->sink.emit_count, 0);
	}
	kp_buf_destroy(&before);
	kp_buf_destroy(&after);
}

struct logged {
	int level;
	char name[32];
	char message[64];
	int calls;
};

static void capture_log(void *arg, int level, const char *name,
			const char *message)
{
	struct logged *l = arg;

	l->level = level;
	snprintf(l->name, sizeof(l->name), "%s", name);
	snprintf(l->message, sizeof(l->message), "%s", message);
	l->calls++;
}

static void test_log(void **state)
{
	struct fixture *f = *state;
	struct logged l;

	memset(&l, 0, sizeof(l));
	f->h->log(f->hd, KP_PROC_LOG_DEBUG, "to the server log");
	f->sink.log_fn = capture_log;
	f->sink.log_arg = &l;
	f->h->log(f->hd, KP_PROC_LOG_WARN, "user \"x\" is busy");
	assert_int_equal(l.calls, 1);
	assert_int_equal(l.level, KP_PROC_LOG_WARN);
	assert_string_equal(l.name, "proc-a");
	assert_string_equal(l.message, "user \"x\" is busy");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_host_table),
		cmocka_unit_test_setup_teardown(test_emits, setup, teardown),
		cmocka_unit_test(test_any_output),
		cmocka_unit_test_setup_teardown(test_packed_emit, setup,
						teardown),
		cmocka_unit_test(test_owned_outputs),
		cmocka_unit_test_setup_teardown(test_state, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scan, setup, teardown),
		cmocka_unit_test_setup_teardown(test_abort_restores, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_abort_after_alloc_failure,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_log, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
