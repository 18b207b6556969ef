#!/usr/bin/env bats
# Registry images through Slurm: every runtime runs `--container-image=
# REG/REPO:TAG`; the submitting side pins the tag to a digest that every
# step of the job keeps while the tag moves; a bad reference fails at
# submission; 16 jobs on a cold image fetch each blob once on the node.
# The registry is Debian's docker-registry on loopback behind the fault
# proxy of tests/harness/registry (which logs every request).

bats_require_minimum_version 1.5.0
load helpers

setup_file() {
	require_cluster
	command -v docker-registry skopeo >/dev/null ||
		{ echo "docker-registry and skopeo are needed (tests/harness/cluster/packages.sh)" >&2; return 1; }
	export REGDIR=$E2E_DIR/registry
	mkdir -p "$E2E_DIR" && chmod 755 "$E2E_DIR"
	rm -rf "$REGDIR"
	bash "$REPO/tests/harness/registry/start.sh" "$REGDIR" --proxy >/dev/null
	R=$(. "$REGDIR/env" && echo "$REGISTRY")
	PROXY_LOG=$(. "$REGDIR/env" && echo "$PROXY_LOG")
	export R PROXY_LOG
	# The plugin reads berth.conf at every step: no restart needed.
	set_conf "InsecureRegistries=$R"
	push "$(make_image reg-one.tar oci --tag berth/one:1 --workdir /one)" berth/one:1
	push "$(make_image reg-two.tar oci --tag berth/two:1 --workdir /two)" berth/two:1
}

teardown_file() {
	[ -n "${REGDIR:-}" ] && bash "$REPO/tests/harness/registry/stop.sh" "$REGDIR" >/dev/null 2>&1
	conf_restore
	return 0
}

push() { bash "$REPO/tests/harness/registry/push.sh" --env "$REGDIR/env" "$1" "$2" >/dev/null; }

layers_of() {
	skopeo inspect --raw --tls-verify=false "docker://$R/$1" | jq -r '.config.digest, .layers[].digest'
}

runs_registry_image() {
	run --separate-stderr as_user srun --container-runtime="$1" --container-image="$R/berth/one:1" \
		sh -c 'pwd; echo "pins=$BERTH_IMAGE_PINS"'
	echo "$output"
	echo "$stderr"
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = /one ]
	[[ "${lines[1]}" == "pins=$R/berth/one:1@sha256:"* ]]
}

@test "a registry image runs under srun [charliecloud]" {
	runs_registry_image charliecloud
}

@test "a registry image runs under srun [singularity]" {
	runs_registry_image singularity
}

@test "a registry image runs under srun [docker]" {
	docker info >/dev/null 2>&1 || skip "dockerd is not running"
	grep -qi '^AllowedRuntimes=.*docker' "$BERTH_CONF" || skip "the cluster does not allow docker"
	runs_registry_image docker
}

@test "a tag pushed anew while the job runs changes nothing for its later steps" {
	push "$IMAGES/reg-one.tar" berth/moving:1
	d=$(job_dir)
	# salloc pins at submission; its two steps are apart in time, and the
	# tag moves between them.
	as_user salloc -N1 --container-image="$R/berth/moving:1" sh -c "
		srun --container-image=$R/berth/moving:1 sh -c 'ls -d /one /two 2>/dev/null; true' >$d/step1
		echo \"\$BERTH_IMAGE_PINS\" >$d/pins
		touch $d/ready
		while [ ! -e $d/moved ]; do sleep 0.2; done
		srun --container-image=$R/berth/moving:1 sh -c 'ls -d /one /two 2>/dev/null; true' >$d/step2
	" >"$d/salloc.out" 2>&1 &
	for _ in $(seq 600); do [ -e "$d/ready" ] && break; sleep 0.1; done
	[ -e "$d/ready" ] || { cat "$d/salloc.out"; false; }
	push "$IMAGES/reg-two.tar" berth/moving:1
	touch "$d/moved"
	wait
	cat "$d/salloc.out" "$d/step1" "$d/step2"
	[ "$(cat "$d/step1")" = /one ]
	[ "$(cat "$d/step2")" = /one ]
	[[ "$(cat "$d/pins")" == "$R/berth/moving:1@sha256:"* ]]
	# a new job gets the new image
	run --separate-stderr as_user srun --container-image="$R/berth/moving:1" \
		sh -c 'ls -d /one /two 2>/dev/null; true'
	[ "$output" = /two ]
}

@test "a job submitted before the tag moved runs the image it was submitted with" {
	push "$IMAGES/reg-one.tar" berth/held:1
	d=$(job_dir)
	job=$(as_user sbatch --parsable --hold -o "$d/out" --container-image="$R/berth/held:1" \
		--wrap 'ls -d /one /two 2>/dev/null; echo "$BERTH_IMAGE_PINS"')
	push "$IMAGES/reg-two.tar" berth/held:1
	scontrol release "$job"
	wait_job_left "$job"
	cat "$d/out"
	[ "$(head -n1 "$d/out")" = /one ]
	[[ "$(sed -n 2p "$d/out")" == "$R/berth/held:1@sha256:"* ]]
}

@test "an unknown repository or tag fails at submission, with the registry's answer" {
	run as_user srun --container-image="$R/berth/nosuch:1" true
	echo "$output"
	[ "$status" -ne 0 ]
	[[ "$output" == *"berth: --container-image=$R/berth/nosuch:1: registry $R has no image"*"unknown repository or tag"* ]]
	[[ "$output" != *"srun: error: task"* ]] # no step ran
	run as_user sbatch --container-image="$R/berth/one:nosuchtag" --wrap true
	[ "$status" -ne 0 ]
	[[ "$output" == *"unknown repository or tag"* ]]
}

@test "16 jobs on a cold image fetch each blob once on the node" {
	# a layer no earlier run has seen (the cluster's cache outlives runs)
	rm -f "$IMAGES/reg-cold.tar"
	img=$(make_image reg-cold.tar oci --tag berth/cold:1 --big-mb 4 --seed "$$$RANDOM")
	push "$img" berth/cold:1
	from=$(wc -l <"$PROXY_LOG")
	d=$(job_dir)
	jobs=()
	for i in $(seq 16); do
		jobs+=("$(as_user sbatch --parsable --overcommit --mem=50M -o "$d/out.$i" \
			--container-image="$R/berth/cold:1" --wrap 'cat /etc/hostname >/dev/null; echo ran')")
	done
	for j in "${jobs[@]}"; do wait_job_left "$j" 3000; done
	for i in $(seq 16); do grep -qx ran "$d/out.$i" || { cat "$d/out.$i"; false; }; done
	# each blob at most once (the base layers may be cached from other
	# images), the new config and the new big layer exactly once
	fetched=0
	while read -r blob; do
		n=$(tail -n +$((from + 1)) "$PROXY_LOG" | grep -c " GET /v2/berth/cold/blobs/$blob " || true)
		[ "$n" -le 1 ] || { echo "$blob fetched $n times"; false; }
		fetched=$((fetched + n))
	done < <(layers_of berth/cold:1)
	[ "$fetched" -ge 2 ]
}

@test "a URL image is pinned at submission: the node runs those bytes or refuses" {
	mkdir -p "$E2E_DIR/www-pin"
	python3 "$REPO/tests/harness/fixtures/mkimage.py" legacy "$E2E_DIR/www-pin/img.tar" --workdir /one >/dev/null
	cp "$E2E_DIR/www-pin/img.tar" "$E2E_DIR/www-pin/img2.tar"
	coproc HTTPD { exec python3 "$REPO/tests/harness/fixtures/httpd.py" --port 0 --dir "$E2E_DIR/www-pin"; }
	read -r port <&"${HTTPD[0]}"
	url=http://127.0.0.1:$port
	d=$(job_dir)
	# pinned and downloaded
	first=$(as_user sbatch --parsable --hold -o "$d/first" --container-image="$url/img.tar" \
		--wrap 'pwd; echo "$BERTH_IMAGE_PINS"')
	scontrol release "$first"
	wait_job_left "$first"
	# both files change after submission: the cached pinned copy still
	# runs; the one never fetched cannot be had any more and is refused
	cached=$(as_user sbatch --parsable --hold -o "$d/cached" --container-image="$url/img.tar" --wrap pwd)
	gone=$(as_user sbatch --parsable --hold -o "$d/gone" --container-image="$url/img2.tar" --wrap pwd)
	for f in img.tar img2.tar; do
		python3 "$REPO/tests/harness/fixtures/mkimage.py" legacy "$E2E_DIR/www-pin/$f" --workdir /two >/dev/null
	done
	scontrol release "$cached" "$gone"
	wait_job_left "$cached"
	wait_job_left "$gone"
	cat "$d/first" "$d/cached" "$d/gone"
	grep -v '^berth: downloading' "$d/first" >"$d/first.out"
	[ "$(head -n1 "$d/first.out")" = /one ]
	[[ "$(sed -n 2p "$d/first.out")" == "$url/img.tar@@etag:"* ]]
	grep -qx /one "$d/cached"
	grep -q "the file changed after the job was submitted" "$d/gone"
	! grep -qx /two "$d/gone"
	# a new job gets the new file
	run --separate-stderr as_user srun --container-image="$url/img.tar" pwd
	kill "$HTTPD_PID" 2>/dev/null || true
	[ "$output" = /two ]
}
