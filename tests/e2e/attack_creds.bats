#!/usr/bin/env bats
# A password and a pre-signed query in an image URL stay secret (issue 23,
# item 7), through the real cluster as the test user.  The URL
#     http://USER:PASS@127.0.0.1:PORT/private/img.tar?X-Amz-Signature=SIG
# is served by tests/harness/fixtures/httpd.py, which answers 403 without
# those very credentials and query (a dropped secret fails the job) and
# waits a few seconds before every answer, so the submission's `berth
# resolve` and the node's stager can be watched while they run.  Neither
# PASS nor SIG may appear in any process's command line (but sbatch's own,
# which is Slurm's: the README's privilege model says so), in slurmd's log,
# in the job's environment (BERTH_IMAGE_PINS included), in berth's messages
# or in the user's cache; and the job still runs the image.

load helpers

setup_file() {
	require_cluster
	export WWW=$E2E_DIR/www-creds USR=berthcreds PASS SIG
	PASS=pw$RANDOM$RANDOM$RANDOM
	SIG=sig$RANDOM$RANDOM$RANDOM
	mkdir -p "$WWW" && chmod 755 "$E2E_DIR" "$WWW"
	python3 "$REPO/tests/harness/fixtures/mkimage.py" legacy "$WWW/img.tar" --workdir /creds >/dev/null
	chmod 644 "$WWW/img.tar"
}

# start_server DELAY: httpd.py in the background; sets PORT.
start_server() {
	coproc HTTPD { HTTPD_AUTH="$USR:$PASS" HTTPD_QUERY="X-Amz-Signature=$SIG" exec python3 \
		"$REPO/tests/harness/fixtures/httpd.py" --port 0 --dir "$WWW" --delay "$1"; }
	read -r PORT <&"${HTTPD[0]}"
}

# Every process's command line, read in this shell (a grep of the secret
# would put it on a command line itself), until $1 exists.  The harness's
# submission chain (timeout, bash submit.sh, setpriv, env) and sbatch carry
# the URL on their command lines: that is the test's and Slurm's doing.
# Writes the offending command lines to $2 and "seen resolve|stager" lines
# for berth's own commands, so a scan that saw nothing fails.
scan_cmdlines() {
	local stop=$1 out=$2 f c argv0
	: >"$out"
	while [ ! -e "$stop" ]; do
		for f in /proc/[0-9]*/cmdline; do
			c=$(tr "\\0" " " 2>/dev/null <"$f") || continue
			argv0=${c%% *}
			argv0=${argv0##*/}
			case "$c" in
			*"berth resolve"*) echo "seen resolve" >>"$out" ;;
			*"berth pull"* | *"berth fetch"*) echo "seen stager" >>"$out" ;;
			esac
			case "$argv0" in timeout | bash | setpriv | env | sbatch) continue ;; esac
			if [[ "$c" == *"$PASS"* || "$c" == *"$SIG"* ]]; then
				echo "LEAK $f: ${c//$PASS/<PASS>}" >>"$out"
			fi
		done
		sleep 0.1
	done
}

# no_secret FILE...: neither PASS nor SIG in the files (after the scan).
no_secret() {
	! grep -rlF -e "$PASS" -e "$SIG" "$@"
}

# run_url_job RUNTIME URL: submit, watch, wait; the job's output in $d/out.
run_url_job() {
	local rt=$1 url=$2 job
	d=$(job_dir)
	log_from=$(stat -c %s "$BERTH_CLUSTER_DIR/log/slurmd.log")
	scan_cmdlines "$d/stop" "$d/scan" &
	local scanner=$!
	job=$(as_user sbatch --parsable -o "$d/out" --container-runtime="$rt" \
		--container-image="$url" --wrap 'pwd; env')
	wait_job_left "$job"
	touch "$d/stop"
	wait "$scanner"
	cat "$d/out"
	grep -v '^seen' "$d/scan" || true
	sort -u "$d/scan" | grep '^seen' || true
	tail -c +"$((log_from + 1))" "$BERTH_CLUSTER_DIR/log/slurmd.log" >"$d/slurmd.log"
}

# What every case checks: the image ran, nothing leaked, the pin is masked.
secrets_kept() {
	[ "$(grep -v '^berth: ' "$d/out" | head -n1)" = /creds ]
	! grep -q '^LEAK' "$d/scan"
	grep -qx 'seen resolve' "$d/scan"
	grep -qx 'seen stager' "$d/scan"
	no_secret "$d/out" "$d/slurmd.log" "$BERTH_CLUSTER_DIR/cache/$(id -u berthtest)"
	# the pin is filed under the masked URL and its hash, and still pins
	pins=$(grep '^BERTH_IMAGE_PINS=' "$d/out")
	[[ "$pins" == "BERTH_IMAGE_PINS=http://***@127.0.0.1:$PORT/private/"*"?***|sha256:"*"@@etag:"* ]]
}

@test "a URL's password and signature stay off command lines, logs, the job's environment and the cache [charliecloud]" {
	start_server 3
	run_url_job charliecloud "http://$USR:$PASS@127.0.0.1:$PORT/private/img.tar?X-Amz-Signature=$SIG"
	kill "$HTTPD_PID" 2>/dev/null || true
	secrets_kept
}

@test "a signed URL that redirects to another signed URL stays secret too [docker]" {
	start_server 3
	run_url_job docker "http://$USR:$PASS@127.0.0.1:$PORT/private/redirect/img.tar?X-Amz-Signature=$SIG"
	kill "$HTTPD_PID" 2>/dev/null || true
	secrets_kept
}

@test "a refused URL's error names it masked, never its secrets" {
	start_server 0
	d=$(job_dir)
	log_from=$(stat -c %s "$BERTH_CLUSTER_DIR/log/slurmd.log")
	# a wrong signature: the server answers 403 at submission and on the node
	run as_user srun --container-image="http://$USR:$PASS@127.0.0.1:$PORT/private/img.tar?X-Amz-Signature=x$SIG" pwd
	kill "$HTTPD_PID" 2>/dev/null || true
	echo "$output" | sed "s/$PASS/<PASS>/g; s/$SIG/<SIG>/g"
	[ "$status" -ne 0 ]
	[[ "$output" == *"http://***@127.0.0.1:$PORT/private/img.tar?***"*"403"* ]]
	tail -c +"$((log_from + 1))" "$BERTH_CLUSTER_DIR/log/slurmd.log" >"$d/slurmd.log"
	echo "$output" >"$d/out"
	no_secret "$d/out" "$d/slurmd.log"
}
