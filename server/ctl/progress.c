/*
 * progress.c - judging and formatting replay progress; see progress.h.
 */
#include "progress.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "mpget.h"

/* Copies the str field key of map into out ("" when absent or nil). */
static void copy_str(const msgpack_object *map, const char *key, char *out,
		     size_t len)
{
	const char *p;
	size_t n;

	out[0] = '\0';
	if (kp_ctl_mp_bytes(kp_ctl_mp_get(map, key), &p, &n) != 0)
		return;
	if (n >= len)
		n = len - 1;
	memcpy(out, p, n);
	out[n] = '\0';
}

int kp_ctl_progress_read(const msgpack_object *replay,
			 struct kp_ctl_progress *p)
{
	memset(p, 0, sizeof(*p));
	if (replay == NULL || replay->type == MSGPACK_OBJECT_NIL)
		return 1;
	if (kp_ctl_mp_get_u64(replay, "version", &p->version) != 0)
		return -EINVAL;
	copy_str(replay, "state", p->state, sizeof(p->state));
	copy_str(replay, "reason", p->reason, sizeof(p->reason));
	kp_ctl_mp_get_u64(replay, "records_done", &p->done);
	kp_ctl_mp_get_u64(replay, "records_to_go", &p->to_go);
	kp_ctl_mp_get_u64(replay, "records_per_second", &p->rps);
	kp_ctl_mp_get_u64(replay, "eta_ms", &p->eta_ms);
	kp_ctl_mp_get_u64(replay, "rate_limit", &p->rate_limit);
	if (p->rate_limit > 0 && p->rps > p->rate_limit) {
		p->rps = p->rate_limit;
		p->eta_ms = p->to_go * 1000 / p->rps;
	}
	return 0;
}

enum kp_ctl_replay_outcome kp_ctl_replay_judge(const msgpack_object *status,
					       uint64_t target,
					       struct kp_ctl_progress *p,
					       uint64_t *live)
{
	int rc = kp_ctl_progress_read(kp_ctl_mp_get(status, "replay"), p);

	*live = 0;
	kp_ctl_mp_get_u64(status, "version", live);
	if (rc == 1)
		return *live == target ? KP_CTL_REPLAY_CUT_OVER
				       : KP_CTL_REPLAY_LOST;
	if (rc != 0 || p->version != target)
		return KP_CTL_REPLAY_LOST;
	if (strcmp(p->state, "failed") == 0)
		return KP_CTL_REPLAY_FAILED;
	return KP_CTL_REPLAY_RUNNING;
}

json_t *kp_ctl_progress_json(const struct kp_ctl_progress *p)
{
	json_t *eta = p->rps > 0 || p->to_go == 0
			      ? json_integer((json_int_t)(p->to_go ? p->eta_ms : 0))
			      : json_null();

	return json_pack("{sIsIsIsIso}", "version", (json_int_t)p->version,
			 "records_done", (json_int_t)p->done, "records_to_go",
			 (json_int_t)p->to_go, "records_per_second",
			 (json_int_t)p->rps, "eta_ms", eta);
}

void kp_ctl_duration_format(uint64_t ms, char *buf, size_t len)
{
	uint64_t s = ms / 1000;

	if (s >= 3600)
		snprintf(buf, len, "%llu:%02u:%02u",
			 (unsigned long long)(s / 3600),
			 (unsigned)(s / 60 % 60), (unsigned)(s % 60));
	else
		snprintf(buf, len, "%u:%02u", (unsigned)(s / 60),
			 (unsigned)(s % 60));
}

/* Whole percent done: 100 when nothing is left. */
static unsigned percent(const struct kp_ctl_progress *p)
{
	long double total = (long double)p->done + (long double)p->to_go;

	if (p->to_go == 0)
		return 100;
	return (unsigned)((long double)p->done * 100 / total);
}

size_t kp_ctl_progress_bar(const struct kp_ctl_progress *p, unsigned width,
			   char *buf, size_t len)
{
	char head[32], tail[160], eta[32], total[24], bar[128] = "";
	unsigned pct = percent(p);
	size_t fixed, bw, inner, filled;
	int n;

	if (p->rps > 0 || p->to_go == 0)
		kp_ctl_duration_format(p->to_go ? p->eta_ms : 0, eta, sizeof(eta));
	else
		snprintf(eta, sizeof(eta), "?");
	snprintf(head, sizeof(head), "v%llu ", (unsigned long long)p->version);
	snprintf(total, sizeof(total), "%llu",
		 (unsigned long long)(p->done + p->to_go));
	snprintf(tail, sizeof(tail),
		 "%3u%%  %*llu/%s records  %6llu rec/s  ETA %-5s", pct,
		 (int)strlen(total), (unsigned long long)p->done, total,
		 (unsigned long long)p->rps, eta);
	fixed = strlen(head) + 1 + strlen(tail);
	bw = width > fixed ? width - fixed : 0;
	if (bw > sizeof(bar) - 2)
		bw = sizeof(bar) - 2;
	if (bw >= 10) {
		inner = bw - 2;
		filled = inner * pct / 100;
		bar[0] = '[';
		memset(bar + 1, '#', filled);
		memset(bar + 1 + filled, '.', inner - filled);
		bar[bw - 1] = ']';
		bar[bw] = ' ';
		bar[bw + 1] = '\0';
	}
	n = snprintf(buf, len, "%s%s%s", head, bar, tail);
	if (n < 0)
		n = 0;
	return (size_t)n < len ? (size_t)n : len - 1;
}
