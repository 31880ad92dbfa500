#!/usr/bin/env bash
# Serves the bundled sample store on 127.0.0.1, mounts it with modelstorefs,
# shows what a user sees, and cleans everything up again.
set -euo pipefail
bin=$(realpath "${1:-bin/modelstorefs}")
store=$(realpath "$(dirname "$0")/../integration/testdata/store")
work=$(mktemp -d)
mnt="$work/models"
mkdir -p "$mnt"
port=18480
while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done # first free port
url="http://127.0.0.1:$port"
server="" daemon=""

cleanup() {
	[ -n "$daemon" ] && kill -TERM "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null || true
	grep -qs " $mnt " /proc/mounts && { umount -l "$mnt" 2>/dev/null || fusermount3 -u -z "$mnt" 2>/dev/null || true; }
	[ -n "$server" ] && kill "$server" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

show() { printf '\n$ %s\n' "$*"; "$@"; }

"$bin" serve --addr "127.0.0.1:$port" "$store" >"$work/http.log" 2>&1 &
server=$!
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done

echo "Sample store served at $url; mounting on $mnt"
DIGITS_MODEL_STORE_URL="$url" "$bin" mount --cache-dir "$work/cache" "$mnt" 2>"$work/daemon.log" &
daemon=$!
for _ in $(seq 100); do grep -qs " $mnt " /proc/mounts && break; sleep 0.1; done
grep -qs " $mnt " /proc/mounts || { cat "$work/daemon.log"; echo "demo: mount failed" >&2; exit 1; }

store_dir="$mnt/127.0.0.1_$port"
show ls -la "$mnt"
show ls -l "$store_dir"
show cat "$store_dir/welcome.txt"
show ls -l "$store_dir/lenet"
show cat "$store_dir/lenet/info.json"
show grep -i mnist "$mnt/models.tsv"
show cat "$store_dir/broken/error.txt"
show cmp "$store_dir/lenet/model.caffemodel" "$store/lenet/snapshot_iter_28140.caffemodel"
echo "(cmp: identical)"
show cp -r "$store_dir/lenet" "$work/job"
show ls -l "$work/job"
show "$bin" check "$store" || true

kill -TERM "$daemon"
wait "$daemon" && echo && echo "modelstorefs exited 0 after SIGTERM; the daemon's log:"
daemon=""
cat "$work/daemon.log"
