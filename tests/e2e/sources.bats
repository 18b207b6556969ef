#!/usr/bin/env bats
# Issue 26, items 8-10, through Slurm: --container-image=dockerd://NAME on
# every runtime for a user who may use the node's Docker (a member of the
# socket's group, made here), refused at submission for one who may not;
# the site's Importer= (tests/harness/fixtures/importer.sh) on every
# runtime; a Docker credential helper answering for a registry with Basic
# auth, found by the node's stager in /usr/local/bin.

bats_require_minimum_version 1.5.0
load helpers

SOCK=/var/run/docker.sock
DUSER=berthdocker # in the socket's group, made here when missing
HELPER=/usr/local/bin/docker-credential-berth-e2e

dapi() { curl -sf --unix-socket "$SOCK" "$@"; }
dsubmit() { BERTH_TEST_USER=$DUSER timeout "${E2E_TIMEOUT:-120}" "$SUBMIT" "$@"; }

setup_file() {
	require_cluster
	export SRC=$E2E_DIR/sources
	export REGDIR=$SRC/registry # started by the credential helper's case
	rm -rf "$SRC" && mkdir -p "$SRC/importer/src" && chmod -R 755 "$SRC"
	cp "$REPO/tests/harness/fixtures/importer.sh" "$SRC/importer/importer"
	cp "$(make_image src-site-one.tar legacy --tag site/one:1 --workdir /site-one)" \
		"$SRC/importer/src/one.tar"
	chmod 644 "$SRC/importer/src/one.tar"
	# an OCI image layout folder (Docker 25+'s docker save, unpacked)
	mkdir "$SRC/importer/src/lay.oci"
	tar -xf "$(make_image src-site-lay.tar oci --tag site/lay:1 --workdir /site-lay \
		--no-manifest-json)" -C "$SRC/importer/src/lay.oci"
	chmod -R a+rX "$SRC/importer/src"
	# The plugin reads berth.conf at every step: no restart needed.
	set_conf "Importer=$SRC/importer/importer"
	# the socket's group by its number (a chroot row may name it otherwise)
	sgroup=$(getent group "$(stat -c %g "$SOCK" 2>/dev/null)" | cut -d: -f1)
	if [ -n "$sgroup" ] && [ "$sgroup" != root ] && dapi --max-time 5 http://x/_ping >/dev/null; then
		id -u "$DUSER" >/dev/null 2>&1 || useradd -m -s /bin/bash -G "$sgroup" "$DUSER"
		id -nG "$DUSER" | grep -qw "$sgroup" || usermod -aG "$sgroup" "$DUSER"
		DIMG=$(make_image src-dockerd.tar legacy --tag berth-e2e-src/dk:1 --workdir /from-dockerd \
			--label berth.test=sources)
		dapi -X POST -H 'Content-Type: application/x-tar' --data-binary @"$DIMG" \
			"http://x/images/load?quiet=1" >/dev/null
		export DIMG
	fi
}

teardown_file() {
	conf_restore
	[ -n "${DIMG:-}" ] && dapi -X DELETE "http://x/images/berth-e2e-src/dk:1?force=1" >/dev/null 2>&1
	[ -f "$REGDIR/env" ] && bash "$REPO/tests/harness/registry/stop.sh" "$REGDIR" >/dev/null 2>&1
	rm -f "$HELPER" /home/berthtest/.docker/config.json.berth-e2e
	return 0
}

needs_docker() { [ -n "${DIMG:-}" ] || skip "dockerd is not running (.ci/run starts it), or its socket's group has no name here"; }

# On every runtime, SUBMIT-CMD srun --container-image=IMAGE pwd prints
# FOLDER (the image's working folder: the image itself reached the task).
runs_everywhere() { # SUBMIT-CMD IMAGE FOLDER
	local rt
	for rt in charliecloud singularity docker; do
		run --separate-stderr "$1" srun --container-runtime=$rt --container-image="$2" pwd
		echo "$rt: $output $stderr"
		[ "$status" -eq 0 ]
		[ "$output" = "$3" ]
	done
}

@test "dockerd://NAME runs on every runtime for a user in the socket's group" {
	needs_docker
	runs_everywhere dsubmit dockerd://berth-e2e-src/dk:1 /from-dockerd
}

@test "dockerd://NAME is refused at submission for a user outside the socket's group (charliecloud, docker)" {
	needs_docker
	! setpriv --reuid=berthtest --regid="$(id -g berthtest)" --init-groups test -w "$SOCK" # not in its group
	# Docker's loader is root: the user's staging exports, never root's
	for rt in charliecloud docker; do
		run as_user srun --container-runtime=$rt \
			--container-image=dockerd://berth-e2e-src/dk:1 pwd
		echo "$rt: $output"
		[ "$status" -ne 0 ]
		[[ "$output" == *"you may not use Docker"*"docker save IMAGE -o FILE.tar"* ]]
		[[ "$output" != */from-dockerd* ]]
	done
	# At step start the node's stager (berth pull / berth fetch, as the job
	# user with the job's groups) is refused by the socket itself:
	# tests/pipeline/sources.bats runs that very command as such a user.
	[ -z "$(find "$BERTH_CLUSTER_DIR/cache/$(id -u berthtest)" -name 'dockerd-*' 2>/dev/null)" ]
}

@test "Importer=: site://one runs on every runtime, fetched once by the importer as the user" {
	runs_everywhere as_user site://one /site-one
	log=$BERTH_CLUSTER_DIR/cache/$(id -u berthtest)/imports/fetched.log
	[ "$(grep -c "^one " "$log")" -eq 1 ] # (the log also holds other images')
	[ "$(stat -c %U "$log")" = berthtest ]
	# the importer's answer is checked: no file, no job
	run as_user srun --container-runtime=charliecloud --container-image=site://nothing true
	[ "$status" -ne 0 ]
	[[ "$output" == *"could not fetch site://nothing (exit 3"* ]]
}

@test "Importer=: an OCI layout folder runs on every runtime; a hostile answer is refused, its password never logged, no child left" {
	runs_everywhere as_user site://lay /site-lay
	cache=$BERTH_CLUSTER_DIR/cache/$(id -u berthtest)
	[ "$(grep -c '^lay ' "$cache/imports/fetched.log")" -eq 1 ]
	[ "$(ls "$cache"/downloads/import-*.tar | wc -l)" -eq 1 ]
	# a symlink to /etc/shadow, a fifo: named, and the fix said
	for name in shadow fifo; do
		run as_user srun --container-runtime=charliecloud --container-image=site://$name true
		echo "$name: $output"
		[ "$status" -ne 0 ]
		[[ "$output" == *"berth: "*"fetched site://$name but $cache/imports/$name is a"*"ask the site's administrators to fix it"* ]]
		[[ "$output" != *root:* ]]
	done
	# what it prints on stderr reaches the job's user only, never a log
	run as_user srun --container-runtime=charliecloud --container-image=site://secret true
	[ "$status" -ne 0 ]
	[[ "$output" == *"could not fetch site://secret (exit 4"* ]]
	! grep -rqs hunter2-s3cret "$BERTH_CLUSTER_DIR"/log*
	# a background child it forgot is killed when it exits
	run as_user srun --container-runtime=charliecloud --container-image=site://orphan pwd
	[ "$status" -eq 0 ]
	[ "${lines[-1]}" = /site-one ]
	pid=$(cat "$cache/imports/orphan.pid") # gone, or a zombie init has yet to reap
	gone() { [ ! -e "/proc/$1" ] || [ "$(sed 's/.*) //' "/proc/$1/stat" | cut -c1)" = Z ]; }
	for _ in $(seq 50); do gone "$pid" && break; sleep 0.1; done
	gone "$pid"
}

@test "a Docker credential helper answers for a registry with Basic auth, its output never shown" {
	command -v docker-registry skopeo >/dev/null || skip "docker-registry and skopeo are needed"
	bash "$REPO/tests/harness/registry/start.sh" "$REGDIR" --auth basic >/dev/null
	R=$(. "$REGDIR/env" && echo "$REGISTRY")
	bash "$REPO/tests/harness/registry/push.sh" --env "$REGDIR/env" \
		"$(make_image reg-one.tar oci --tag berth/one:1 --workdir /one)" berth/cred:1 >/dev/null
	set_conf "InsecureRegistries=$R"
	cat >"$HELPER" <<SH
#!/bin/sh
[ "\$1" = get ] || exit 2
read -r server
echo "helper-stderr-leak bobpw" >&2
[ "\$server" = "$R" ] || { echo "credentials not found in native keychain"; exit 1; }
printf '{"ServerURL":"%s","Username":"bob","Secret":"bobpw"}\n' "\$server"
SH
	chmod 755 "$HELPER"
	h=/home/berthtest
	[ ! -e "$h/.docker/config.json" ] || mv "$h/.docker/config.json" "$h/.docker/config.json.berth-e2e"
	install -d -o berthtest "$h/.docker"
	printf '{"credHelpers":{"%s":"berth-e2e"}}' "$R" >"$h/.docker/config.json"
	run as_user srun --container-runtime=charliecloud --container-image="$R/berth/cred:1" pwd
	rm -f "$h/.docker/config.json"
	[ ! -e "$h/.docker/config.json.berth-e2e" ] || mv "$h/.docker/config.json.berth-e2e" "$h/.docker/config.json"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "${lines[-1]}" = /one ]
	[[ "$output" != *bobpw* && "$output" != *helper-stderr-leak* ]]
	! grep -rqs bobpw "$BERTH_CLUSTER_DIR"/log* "$BERTH_CLUSTER_DIR/cache/$(id -u berthtest)"
}
