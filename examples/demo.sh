#!/bin/sh
# The demo behind `make run`: kappad on an embedded data directory, a topic
# with sample click events flowing into it, and the commands to look.
# Usage: examples/demo.sh DATA_DIR LISTEN HTTP   (KAPPAD, KAPPACTL set)
set -eu
DATA=${1:-.kappa-data}
LISTEN=${2:-127.0.0.1:7070}
HTTP=${3:-127.0.0.1:7071}
KAPPAD=${KAPPAD:-build/kappad}
KAPPACTL=${KAPPACTL:-build/kappactl}
HERE=$(cd "$(dirname "$0")" && pwd)
export KAPPA_ADDR="$LISTEN"

mkdir -p "$DATA"
"$KAPPAD" --data "$DATA" --listen "$LISTEN" --http "$HTTP" &
PID=$!
trap 'kill -TERM $PID 2>/dev/null; wait $PID' INT TERM
i=0
until "$KAPPACTL" ping >/dev/null 2>&1; do
	i=$((i + 1))
	if [ $i -gt 100 ] || ! kill -0 $PID 2>/dev/null; then
		echo "demo: kappad did not start" >&2
		exit 1
	fi
	sleep 0.1
done

if ! "$KAPPACTL" topic describe clicks >/dev/null 2>&1; then
	"$KAPPACTL" topic create clicks --partitions 2 --fsync always >/dev/null
	"$KAPPACTL" produce clicks --key-field user --ts-field ts \
		<"$HERE/data/clicks.jsonl"
fi

cat <<MSG

kappad is running (pid $PID) on $LISTEN with data in $DATA.
Sample click events are in topic 'clicks'. Try, in another terminal:

  export KAPPA_ADDR=$LISTEN
  $KAPPACTL topic describe clicks
  $KAPPACTL consume clicks --count 5
  echo '{"user":"ada","page":"/docs"}' | $KAPPACTL produce clicks --key-field user
  $KAPPACTL consume clicks --partition 0 --from latest --follow
  curl -s http://$HTTP/metrics | grep kappa_log_end_offset

Press Ctrl-C to stop the server.
MSG
wait $PID
