#!/usr/bin/env bats
# A job user cannot hold a node with a staging that never ends, and root
# never decompresses the user's data (issue 23, items 1 and 4), through the
# real cluster as the test user:
#  - a URL whose server answers HEAD (the submission's pin) but stalls the
#    download: scancel of the job ends the staging at once (slurmstepd does
#    not signal a step still in user_init; berth asks slurmctld and stops
#    its stager), on charliecloud and docker; the node takes the next job
#    and no stager, build folder or partial download is left;
#  - StageTimeout ends a staging that stalls, with a message naming it;
#  - a docker job's compressed archive is decompressed by the job user into
#    their own cache (the file is theirs, root's cache gets nothing), at
#    most CacheMaxSize: a small archive that decompresses to more fails
#    with a message naming CacheMaxSize and leaves nothing; the root-side
#    loader itself refuses a compressed archive.
# The cluster's berth.conf gets StageTimeout and CacheMaxSize for this
# file only, and is restored.

load helpers

setup_file() {
	require_cluster
	export IMG PORT SERVER_PID UIDT
	IMG=$(make_image legacy.tar legacy --tag berth/test:1)
	UIDT=$(id -u berthtest)
	conf_save
	PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	# HEAD answers at once (no validator: "not pinned"); GET sends its
	# headers and 1 KiB, then nothing, holding the connection.
	python3 - "$PORT" >/dev/null 2>&1 <<-'EOF' &
		import sys, time, http.server, socketserver
		class H(http.server.BaseHTTPRequestHandler):
		    def do_HEAD(self):
		        self.send_response(200)
		        self.send_header("Content-Length", "10485760")
		        self.end_headers()
		    def do_GET(self):
		        self.do_HEAD()
		        self.wfile.write(b"\0" * 1024)
		        self.wfile.flush()
		        time.sleep(3600)
		    def log_message(self, *a):
		        pass
		class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
		    daemon_threads = True
		S(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
	EOF
	SERVER_PID=$!
	for _ in $(seq 50); do
		curl -sfI "http://127.0.0.1:$PORT/x.tar" >/dev/null && break
		sleep 0.1
	done
}

teardown_file() {
	conf_restore
	[ -n "${SERVER_PID:-}" ] && kill "$SERVER_PID" 2>/dev/null
	true
}

# The site's berth.conf plus KEY=VALUE lines, for the next jobs.
site_conf() {
	conf_restore
	set_conf "$@"
}

stagers() { pgrep -f "/bin/berth (pull|fetch|docker load)" || true; }

# Nothing a stopped staging could leave in the test user's cache or root's
# (shown when there is).
nothing_left() {
	local c=$BERTH_CLUSTER_DIR/cache left
	left=$(stagers; find "$c/$UIDT/tmp" "$c/0/tmp" -mindepth 1 -maxdepth 1 2>/dev/null
		find "$c/$UIDT/downloads" "$c/0/downloads" -name '*.part-*' 2>/dev/null)
	[ -z "$left" ] || { echo "left behind: $left"; ps -o pid,args -p "$(stagers | head -1)" || true; }
	[ -z "$left" ]
}

@test "a stalled download: scancel ends the staging at once, the node runs the next job" {
	site_conf
	for rt in charliecloud docker; do
		url="http://127.0.0.1:$PORT/$rt-$RANDOM.tar"
		job=$(as_user sbatch --parsable -o /dev/null --container-runtime=$rt \
			--container-image="$url" --wrap 'sleep 300')
		# cancel once the stager is downloading, not after a guess
		for _ in $(seq 200); do
			[ -n "$(stagers)" ] && break
			sleep 0.1
		done
		[ -n "$(stagers)" ]
		SECONDS=0
		as_user scancel "$job"
		wait_job_left "$job" 300 # 30 s, the kill timeout here
		printf '%s: the job left %ss after scancel\n' "$rt" "$SECONDS"
		node_takes_next_job
		nothing_left
	done
}

@test "StageTimeout ends a stalled staging with a message that names it" {
	site_conf StageTimeout=3
	for rt in charliecloud docker; do
		SECONDS=0
		run as_user srun --container-runtime=$rt \
			--container-image="http://127.0.0.1:$PORT/t-$rt-$RANDOM.tar" true
		printf '%s: %s (%ss)\n' "$rt" "$output" "$SECONDS"
		[ "$status" -ne 0 ]
		[[ "$output" == *"berth: "*"stopped: it did not finish within 3 s (StageTimeout=3"* ]]
		[ "$SECONDS" -lt 30 ]
		nothing_left
	done
}

@test "docker: the job user decompresses a compressed archive into their own cache" {
	site_conf
	d=$(job_dir)
	gzip -c "$IMG" >"$d/img.tar.gz"
	chmod 644 "$d/img.tar.gz"
	run as_user srun --container-runtime=docker --container-image="$d/img.tar.gz" cat /etc/only-in-image
	printf '%s\n' "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"only-in-image"* ]]
	# the uncompressed copy is the user's, in the user's cache
	plain=$(find "$BERTH_CLUSTER_DIR/cache/$UIDT/downloads" -name '*.tar' -newer "$d/img.tar.gz")
	[ -n "$plain" ]
	[ "$(stat -c %u "$plain")" = "$UIDT" ]
	cmp "$plain" "$IMG"
	# root's cache got no archive-sized file (only small memos)
	[ -z "$(find "$BERTH_CLUSTER_DIR/cache/0" -newer "$d/img.tar.gz" -type f -size +64k)" ]
}

@test "docker: an archive that decompresses past CacheMaxSize fails by name and leaves nothing" {
	site_conf CacheMaxSize=20M
	d=$(job_dir)
	truncate -s 100M "$d/zeros"
	tar -C "$d" -cf - zeros | gzip -1 >"$d/bomb.tar.gz"
	rm -f "$d/zeros"
	chmod 644 "$d/bomb.tar.gz"
	run as_user srun --container-runtime=docker --container-image="$d/bomb.tar.gz" true
	printf '%s\n' "$output"
	[ "$status" -ne 0 ]
	[[ "$output" == *"berth: "*"bomb.tar.gz decompresses to more than CacheMaxSize (20.0M)"* ]]
	[ -z "$(find "$BERTH_CLUSTER_DIR/cache/$UIDT/downloads" -newer "$d/bomb.tar.gz" -size +1M)" ]
	nothing_left
}

@test "the root-side loader refuses a compressed archive: it never decompresses user data" {
	d=$(job_dir)
	gzip -c "$IMG" >"$d/img.tar.gz"
	run "$BERTH_CLUSTER_DIR/bin/berth" docker load --cache-dir "$BERTH_CLUSTER_DIR/cache" \
		--name "$d/img.tar.gz" <"$d/img.tar.gz"
	printf '%s\n' "$output"
	[ "$status" -ne 0 ]
	[[ "$output" == *"img.tar.gz is compressed, and this loader (root) reads only uncompressed archives"* ]]
	[ -z "$(find "$BERTH_CLUSTER_DIR/cache/0/tmp" -mindepth 1 -maxdepth 1 2>/dev/null)" ]
}
