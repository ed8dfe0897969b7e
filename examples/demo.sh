#!/bin/sh
# The demo behind `make run`: kappad on an embedded data directory, three
# example processors loaded (two Lua, one C), sample data in their input
# topics, and a trickle of new click events so that data keeps flowing.
# Usage: examples/demo.sh DATA_DIR LISTEN HTTP   (KAPPAD, KAPPACTL, TOPK set)
set -eu
# On a terminal, run as a foreground job of our own (a shell with job
# control): Ctrl-C then reaches only the demo, which stops kappad cleanly
# and exits 0, and not `make`, which would say "Interrupt" and exit 130.
if [ -t 0 ] && [ -z "${KP_DEMO_JOB:-}" ]; then
	export KP_DEMO_JOB=1
	exec sh -mc '"$0" "$@" & fg >/dev/null' "$0" "$@"
fi
DATA=${1:-.kappa-data}
LISTEN=${2:-127.0.0.1:7070}
HTTP=${3:-127.0.0.1:7071}
KAPPAD=${KAPPAD:-build/kappad}
KAPPACTL=${KAPPACTL:-build/kappactl}
TOPK=${TOPK:-build/examples/topk.so}
HERE=$(cd "$(dirname "$0")" && pwd)
export KAPPA_ADDR="$LISTEN"
K=$KAPPACTL

mkdir -p "$DATA"
"$KAPPAD" --data "$DATA" --listen "$LISTEN" --http "$HTTP" \
	--config "$HERE/kappad.conf" &
PID=$!
FEED=""
# Ctrl-C (SIGINT to the whole foreground group, kappad included) or
# SIGTERM: a clean stop of kappad, whose exit status is the demo's.
stop() {
	trap - INT TERM
	[ -n "$FEED" ] && kill "$FEED" 2>/dev/null
	kill -TERM $PID 2>/dev/null
	rc=0
	wait $PID || rc=$?
	[ $rc -eq 0 ] && echo "demo: kappad stopped cleanly"
	exit $rc
}
trap stop INT TERM
i=0
until $K ping >/dev/null 2>&1; do
	i=$((i + 1))
	if [ $i -gt 100 ] || ! kill -0 $PID 2>/dev/null; then
		echo "demo: kappad did not start" >&2
		exit 1
	fi
	sleep 0.1
done

if ! $K topic describe clicks >/dev/null 2>&1; then
	$K topic create clicks --partitions 2 --fsync always >/dev/null
	$K topic create order-events --fsync always >/dev/null
	$K proc create sessions --file "$HERE/lua/sessions.lua" --input clicks \
		--output sessions --config '{"gap_ms":60000}' >/dev/null
	$K proc create orders --file "$HERE/lua/orders.lua" \
		--input order-events --output order-status >/dev/null
	$K proc create topk --file "$TOPK" --input clicks --output topk \
		--config '{"thresholds":[10,50,100,500]}' >/dev/null
	$K produce clicks --key-field user --ts-field ts \
		<"$HERE/data/clicks.jsonl" >/dev/null
	$K produce order-events --key-field order --ts-field ts \
		<"$HERE/data/orders.jsonl" >/dev/null
fi

# A click a second, stamped with the current time, while the demo runs.
(
	users="ada bob cy dee eve fay gus hal"
	pages="/ /pricing /docs /blog /signup"
	n=0
	while kill -0 $PID 2>/dev/null; do
		n=$((n + 1))
		u=$(echo $users | cut -d' ' -f$((n % 8 + 1)))
		p=$(echo $pages | cut -d' ' -f$((n % 5 + 1)))
		echo "{\"user\":\"$u\",\"page\":\"$p\",\"ts\":$(date +%s)000}" |
			$K produce clicks --key-field user --ts-field ts >/dev/null 2>&1 || true
		sleep 1
	done
) &
FEED=$!

cat <<MSG

kappad is running (pid $PID) on $LISTEN, data in $DATA, metrics on
http://$HTTP/metrics. Processors: sessions (Lua), orders (Lua), topk (C).
A new click arrives every second. Try, in another terminal:

  export KAPPA_ADDR=$LISTEN
  $K proc list
  $K proc status orders
  $K view get orders o-1003                 # one order's status (CQRS view)
  $K view scan orders --prefix count:       # orders per status
  $K view get topk ada                      # clicks per user (C processor)
  $K view scan sessions --prefix totals:    # closed sessions per user
  $K consume sessions --count 3             # closed sessions, as events
  $K consume orders.dlq                     # the event that could not apply
  $K consume clicks --partition 0 --from latest --follow

Press Ctrl-C to stop the server.
MSG
rc=0
wait $PID || rc=$?
exit $rc
