/*
 * test_ctl_progress.c - `kappactl proc replay --wait` and `top` without a
 * server (progress.h): what a status says about a replay (running, cut
 * over, failed, vanished), the JSON progress line a script reads, the
 * terminal bar a person watches, and durations.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <msgpack.h>

#include "ctl/json_mp.h"
#include "ctl/progress.h"

/* A decoded msgpack object built from JSON text. */
struct mp {
	msgpack_sbuffer sbuf;   /* the packed bytes */
	msgpack_unpacked up;    /* their decoding */
};

static const msgpack_object *mp_of(struct mp *m, const char *text)
{
	msgpack_packer pk;
	char msg[200];
	size_t off = 0;
	json_t *v = kp_ctl_json_parse(text, strlen(text), msg, sizeof(msg));

	assert_non_null(v);
	msgpack_sbuffer_init(&m->sbuf);
	msgpack_packer_init(&pk, &m->sbuf, msgpack_sbuffer_write);
	assert_int_equal(kp_ctl_json_pack(&pk, v), 0);
	json_decref(v);
	msgpack_unpacked_init(&m->up);
	assert_int_equal(msgpack_unpack_next(&m->up, m->sbuf.data, m->sbuf.size,
					     &off), MSGPACK_UNPACK_SUCCESS);
	return &m->up.data;
}

static void mp_free(struct mp *m)
{
	msgpack_unpacked_destroy(&m->up);
	msgpack_sbuffer_destroy(&m->sbuf);
}

/* The compact JSON text of v (caller frees); v is released. */
static char *text_of(json_t *v)
{
	char *s;

	assert_non_null(v);
	s = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
	json_decref(v);
	return s;
}

static enum kp_ctl_replay_outcome judge(const char *status, uint64_t target,
					struct kp_ctl_progress *p,
					uint64_t *live)
{
	struct mp m;
	enum kp_ctl_replay_outcome o;

	o = kp_ctl_replay_judge(mp_of(&m, status), target, p, live);
	mp_free(&m);
	return o;
}

static void test_judge_running(void **state)
{
	struct kp_ctl_progress p;
	uint64_t live;

	(void)state;
	assert_int_equal(judge("{\"version\":1,\"replay\":{\"version\":2,"
			       "\"state\":\"running\",\"reason\":null,"
			       "\"records_done\":400,\"records_to_go\":600,"
			       "\"records_per_second\":200,\"eta_ms\":3000,"
			       "\"rate_limit\":0}}", 2, &p, &live),
			 KP_CTL_REPLAY_RUNNING);
	assert_int_equal(live, 1);
	assert_int_equal(p.version, 2);
	assert_int_equal(p.done, 400);
	assert_int_equal(p.to_go, 600);
	assert_int_equal(p.rps, 200);
	assert_int_equal(p.eta_ms, 3000);
	assert_string_equal(p.state, "running");
	assert_string_equal(p.reason, "");
}

/* A rate above the replay's --rate is shown as the limit, ETA from it. */
static void test_judge_rate_limit(void **state)
{
	struct kp_ctl_progress p;
	uint64_t live;

	(void)state;
	assert_int_equal(judge("{\"version\":1,\"replay\":{\"version\":2,"
			       "\"state\":\"running\",\"records_done\":400,"
			       "\"records_to_go\":600,"
			       "\"records_per_second\":1587,\"eta_ms\":378,"
			       "\"rate_limit\":200}}", 2, &p, &live),
			 KP_CTL_REPLAY_RUNNING);
	assert_int_equal(p.rate_limit, 200);
	assert_int_equal(p.rps, 200);
	assert_int_equal(p.eta_ms, 3000);
	/* Below the limit, or without one, the server's figures stand. */
	assert_int_equal(judge("{\"version\":1,\"replay\":{\"version\":2,"
			       "\"state\":\"running\",\"records_to_go\":600,"
			       "\"records_per_second\":150,\"eta_ms\":4000,"
			       "\"rate_limit\":200}}", 2, &p, &live),
			 KP_CTL_REPLAY_RUNNING);
	assert_int_equal(p.rps, 150);
	assert_int_equal(p.eta_ms, 4000);
	assert_int_equal(judge("{\"version\":1,\"replay\":{\"version\":2,"
			       "\"state\":\"running\",\"records_to_go\":600,"
			       "\"records_per_second\":1587,\"eta_ms\":378,"
			       "\"rate_limit\":0}}", 2, &p, &live),
			 KP_CTL_REPLAY_RUNNING);
	assert_int_equal(p.rps, 1587);
	assert_int_equal(p.eta_ms, 378);
}

static void test_judge_cut_over_failed_lost(void **state)
{
	struct kp_ctl_progress p;
	uint64_t live;

	(void)state;
	/* The new version is live and no replay runs: done. */
	assert_int_equal(judge("{\"version\":2,\"replay\":null}", 2, &p, &live),
			 KP_CTL_REPLAY_CUT_OVER);
	/* Failed: the reason comes through for the error line. */
	assert_int_equal(judge("{\"version\":1,\"replay\":{\"version\":2,"
			       "\"state\":\"failed\",\"reason\":\"x.lua:3: boom\"}}",
			       2, &p, &live), KP_CTL_REPLAY_FAILED);
	assert_string_equal(p.reason, "x.lua:3: boom");
	assert_int_equal(live, 1);
	/* Gone without a cut-over (gc, rollback), or replaced by another. */
	assert_int_equal(judge("{\"version\":1,\"replay\":null}", 2, &p, &live),
			 KP_CTL_REPLAY_LOST);
	assert_int_equal(judge("{\"version\":1,\"replay\":{\"version\":3,"
			       "\"state\":\"running\"}}", 2, &p, &live),
			 KP_CTL_REPLAY_LOST);
	assert_int_equal(judge("{\"version\":1}", 2, &p, &live),
			 KP_CTL_REPLAY_LOST);
}

static void test_progress_json(void **state)
{
	struct kp_ctl_progress p = { .version = 2, .done = 400, .to_go = 600,
				     .rps = 200, .eta_ms = 3000 };
	char *s;

	(void)state;
	s = text_of(kp_ctl_progress_json(&p));
	assert_string_equal(s, "{\"version\":2,\"records_done\":400,"
			       "\"records_to_go\":600,\"records_per_second\":200,"
			       "\"eta_ms\":3000}");
	free(s);
	/* No rate yet: the server's eta of 0 would be a lie; null instead. */
	p.rps = 0;
	p.eta_ms = 0;
	s = text_of(kp_ctl_progress_json(&p));
	assert_string_equal(s, "{\"version\":2,\"records_done\":400,"
			       "\"records_to_go\":600,\"records_per_second\":0,"
			       "\"eta_ms\":null}");
	free(s);
	/* Nothing left: eta 0 even without a rate. */
	p.to_go = 0;
	s = text_of(kp_ctl_progress_json(&p));
	assert_non_null(strstr(s, "\"eta_ms\":0}"));
	free(s);
}

static void test_duration(void **state)
{
	char b[32];

	(void)state;
	kp_ctl_duration_format(0, b, sizeof(b));
	assert_string_equal(b, "0:00");
	kp_ctl_duration_format(7999, b, sizeof(b));
	assert_string_equal(b, "0:07");
	kp_ctl_duration_format(245000, b, sizeof(b));
	assert_string_equal(b, "4:05");
	kp_ctl_duration_format(3723000, b, sizeof(b));
	assert_string_equal(b, "1:02:03");
	kp_ctl_duration_format(100ull * 3600000, b, sizeof(b));
	assert_string_equal(b, "100:00:00");
}

static void test_bar(void **state)
{
	struct kp_ctl_progress p = { .version = 2, .done = 4000, .to_go = 6000,
				     .rps = 1234, .eta_ms = 5000 };
	char b[512], b2[512];
	size_t n;

	(void)state;
	n = kp_ctl_progress_bar(&p, 80, b, sizeof(b));
	assert_int_equal(n, strlen(b));
	assert_true(n <= 80);
	assert_null(strchr(b, '\r'));
	assert_null(strchr(b, '\n'));
	assert_memory_equal(b, "v2 [", 4);
	assert_non_null(strstr(b, "]  40%   4000/10000 records    1234 rec/s  ETA 0:05"));
	/* 40% of the bar is filled. */
	{
		const char *open = strchr(b, '['), *close = strchr(b, ']');
		size_t inner = (size_t)(close - open - 1), hashes = 0;

		for (const char *c = open + 1; c < close; c++)
			hashes += *c == '#';
		assert_int_equal(hashes, inner * 40 / 100);
	}
	/* The bar keeps its size while it fills (same total). */
	p.done = 9999;
	p.to_go = 1;
	assert_int_equal(kp_ctl_progress_bar(&p, 80, b2, sizeof(b2)), n);
	assert_non_null(strstr(b2, " 99%"));
	/* Unknown rate. */
	p.rps = 0;
	kp_ctl_progress_bar(&p, 80, b, sizeof(b));
	assert_non_null(strstr(b, "ETA ?"));
	/* Narrow terminal: the bar goes, the figures stay. */
	p.rps = 10;
	n = kp_ctl_progress_bar(&p, 40, b, sizeof(b));
	assert_null(strchr(b, '['));
	assert_non_null(strstr(b, "9999/10000 records"));
	/* Done: 100%. */
	p.done = 10000;
	p.to_go = 0;
	kp_ctl_progress_bar(&p, 100, b, sizeof(b));
	assert_non_null(strstr(b, "100%"));
	assert_null(strchr(b, '.'));
	/* A small buffer is cut, not overrun. */
	n = kp_ctl_progress_bar(&p, 100, b, 8);
	assert_int_equal(n, 7);
	assert_int_equal(strlen(b), 7);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_judge_running),
		cmocka_unit_test(test_judge_rate_limit),
		cmocka_unit_test(test_judge_cut_over_failed_lost),
		cmocka_unit_test(test_progress_json),
		cmocka_unit_test(test_duration),
		cmocka_unit_test(test_bar),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
