#!/usr/bin/env bats
# shellcheck disable=SC2016 # $WHO is the container's, in single quotes
# Issue 23, items 2 and 3: a Docker job's archive changes nothing on the
# node but its own one image, and runs only what its own archive holds.
# `berth docker load` (root) sends dockerd the one verified image, untagged,
# its layers checked against the config's diff_ids every time, so
#  - RepoTags of the user's archive never name anything in dockerd;
#  - a second image of the archive is not loaded;
#  - a config alone (another user's image, known by its digest) runs nothing.
# Through the real cluster and the real dockerd, as unprivileged users.

load helpers

SOCK=/var/run/docker.sock
USER2=berthtest2 # the victim's neighbour for item 3, made here when missing

dapi() { curl -sf --unix-socket "$SOCK" "$@"; }

# image_id REF: dockerd's id of REF, or "" when it has none
image_id() {
	dapi "http://x/images/$1/json" 2>/dev/null |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["Id"])' 2>/dev/null || true
}

# config_ids ARCHIVE: the config digest of each image of a legacy archive
config_ids() {
	tar -xOf "$1" manifest.json |
		python3 -c 'import json,sys; [print("sha256:" + m["Config"][:64]) for m in json.load(sys.stdin)]'
}

rmi() { for r in "$@"; do [ -z "$r" ] || dapi -X DELETE "http://x/images/$r?force=1" >/dev/null 2>&1 || true; done; }

dsrun() { as_user srun --container-runtime=docker "$@"; }
dsrun2() { BERTH_TEST_USER=$USER2 timeout "${E2E_TIMEOUT:-120}" "$SUBMIT" srun --container-runtime=docker "$@"; }

setup_file() {
	require_cluster
	dapi --max-time 5 http://x/_ping >/dev/null || skip "dockerd is not running (.ci/run starts it)"
	id -u "$USER2" >/dev/null 2>&1 || useradd -m -s /bin/bash "$USER2"
	# images of this file only (their own label): removing them touches no other test's
	export ADMIN EVIL MULTI PRIV
	ADMIN=$(make_image attack-admin.tar legacy --tag berth-test/admin-tool:stable \
		--label berth.test=attack-admin --env WHO=admin)
	EVIL=$(make_image attack-evil.tar legacy --tag berth-test/admin-tool:stable \
		--label berth.test=attack-evil --env WHO=evil)
	MULTI=$(make_image attack-multi.tar multi --label berth.test=attack-multi)
	PRIV=$(make_image attack-private.tar legacy --label berth.test=attack-private \
		--env WHO=private)
}

teardown_file() {
	local ids
	mapfile -t ids < <( (config_ids "$EVIL"; config_ids "$MULTI"; config_ids "$PRIV"; config_ids "$ADMIN") 2>/dev/null)
	rmi berth-test/admin-tool:stable "${ids[@]}"
}

@test "[docker] RepoTags of a job's archive do not replace a name root uses" {
	# root's image under the name root runs
	rmi berth-test/admin-tool:stable "$(config_ids "$EVIL")"
	curl -sf --unix-socket "$SOCK" -X POST -H 'Content-Type: application/x-tar' \
		--data-binary @"$ADMIN" "http://x/images/load?quiet=1" >/dev/null
	root_id=$(image_id berth-test/admin-tool:stable)
	[ "$root_id" = "$(config_ids "$ADMIN")" ]
	# the user's archive claims that name
	run dsrun --container-image="$EVIL" sh -c 'echo "who=$WHO"'
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *who=evil* ]] # the job ran its own image
	[ "$(image_id berth-test/admin-tool:stable)" = "$root_id" ]
}

@test "[docker] a two-image archive loads only the chosen image, untagged" {
	mapfile -t ids < <(config_ids "$MULTI") # berth/one:1, berth/two:2
	rmi "${ids[@]}"
	run dsrun --container-image="$MULTI#berth/two:2" cat /etc/which
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(tail -1 <<<"$output")" = two ]
	[ "$(image_id "${ids[1]}")" = "${ids[1]}" ] # the chosen one, by id
	[ -z "$(image_id "${ids[0]}")" ]              # the other: not loaded
	# no name of the archive points at either
	for tag in berth/one:1 berth/two:2; do
		t=$(image_id "$tag")
		[ "$t" != "${ids[0]}" ] && [ "$t" != "${ids[1]}" ]
	done
}

@test "[docker] another user's image is not run from its config alone" {
	id=$(config_ids "$PRIV")
	rmi "$id"
	# user A (berthtest) loads a private image through a job
	d=$(job_dir)
	cp "$PRIV" "$d/private.tar"
	chown berthtest "$d/private.tar"
	chmod 600 "$d/private.tar"
	run dsrun --container-image="$d/private.tar" sh -c 'echo "who=$WHO"'
	[ "$status" -eq 0 ]
	[[ "$output" == *who=private* ]]
	[ "$(image_id "$id")" = "$id" ]
	# user B holds its config (a digest is no secret), without the layers ...
	b=$(mktemp -d "$E2E_DIR/job.XXXXXX")
	mkdir "$b/x"
	tar -xf "$PRIV" -C "$b/x"
	(cd "$b/x" && tar -cf ../config-only.tar ./*.json)
	# ... or with layers of another image under the right names
	(cd "$b/x" && other=$(ls -d ./*/ | head -1) &&
		for l in ./*/layer.tar; do cp "${other}layer.tar" "$l.new"; done &&
		for l in ./*/layer.tar; do mv "$l.new" "$l"; done &&
		tar -cf ../wrong-layers.tar ./*)
	rm -rf "$b/x"
	chown -R "$USER2" "$b"
	chmod 700 "$b"
	for a in config-only wrong-layers; do
		run dsrun2 --container-image="$b/$a.tar" sh -c 'echo "ran who=$WHO"'
		echo "$a: $output"
		[ "$status" -ne 0 ]
		[[ "$output" != *ran* ]]
		[[ "$output" == *"berth loads into Docker only the layers an archive holds itself"* ]]
	done
	# nothing left behind in root's cache
	[ -z "$(find "$BERTH_CLUSTER_DIR/cache/0/tmp" -maxdepth 1 -name 'docker-*' 2>/dev/null)" ]
}
