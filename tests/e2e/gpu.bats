#!/usr/bin/env bats
# GPUs through CDI (issue 28), without a GPU: the cluster's stand-in GPUs
# (tests/harness/cluster/gpu-standin.sh: /dev/nvidia0-1 in gres.conf, a
# CDI spec with a stand-in libnvidia-ml.so.1 and nvidia-smi).  The step's
# GPUs, and only those, reach the container with the library, the tool and
# the spec's environment, and what its nvidia-ctk hooks would make; a bad
# spec fails the step with its file and field.  The cluster sets
# ConstrainDevices=yes: a GPU outside the step's allocation cannot be
# opened even when named (the stand-in nodes have no driver: an allowed
# one fails to open with ENXIO, a denied one with EPERM).

load helpers

setup_file() {
	require_cluster
	[ -c /dev/nvidia0 ] && [ -r "$BERTH_CLUSTER_DIR/cdi/nvidia.yaml" ] || {
		echo "no stand-in GPUs: run tests/harness/cluster/start.sh (BERTH_CLUSTER_GPUS=2)" >&2
		return 1
	}
	export IMG
	IMG=$(make_image legacy.tar legacy --tag berth/test:1)
}

teardown() {
	rm -f "$BERTH_CLUSTER_DIR/cdi/zz-broken.yaml"
}

# What the container sees: its GPU nodes (nvidia-smi), the spec's variable.
SEE='nvidia-smi -L; echo "std=$BERTH_STANDIN_GPU ld=$LD_LIBRARY_PATH"; [ -r /usr/lib/libnvidia-ml.so ] && echo linked; for f in /dev/nvidia*; do [ -c $f ] && echo "node $f"; done; true'

@test "--gres=gpu:2: both device nodes, nvidiactl, the library, nvidia-smi and the spec's env" {
	run as_user srun --gres=gpu:2 --container-image="$IMG" sh -c "$SEE"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(grep -c '^GPU [0-9]: Stand-in' <<<"$output")" -eq 2 ]
	[[ "$output" == *"library: /usr/lib/libnvidia-ml.so.1"* ]]
	[[ "$output" == *"std=yes"* ]]
	[[ "$output" == *"node /dev/nvidiactl"* ]]
	# the spec's nvidia-ctk hooks, done by berth: the link, the folder
	[[ "$output" == *"linked"* ]]
	[[ "$output" == *"ld=/usr/lib"* || "$output" == *"ld="*":/usr/lib"* ]]
}

@test "--gres=gpu:1: exactly one GPU; --container-devices adds a named one; no --gres: none" {
	run as_user srun --gres=gpu:1 --container-image="$IMG" sh -c "$SEE"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(grep -c '^node /dev/nvidia[0-9]' <<<"$output")" -eq 1 ]
	[ "$(grep -c '^GPU [0-9]: Stand-in' <<<"$output")" -eq 1 ]
	run as_user srun --container-image="$IMG" --container-devices=nvidia.com/gpu=1 sh -c "$SEE"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(grep -c '^GPU [0-9]: Stand-in' <<<"$output")" -eq 1 ]
	[[ "$output" == *"GPU 1: Stand-in"* ]]
	run as_user srun --container-image="$IMG" sh -c "$SEE"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" != *"GPU "* ]]
	[[ "$output" != *"node /dev/nvidia"* ]]
	[[ "$output" != *"std=yes"* ]]
}

# The driver files by capability, and the GPU nodes.
LIBS='for l in libnvidia-ml.so.1 libcuda.so.1 libGLX_nvidia.so.0; do [ -r /usr/lib/$l ] && echo "lib $l"; done; for f in /dev/nvidia*; do [ -c $f ] && echo "node $f"; done; true'
# Through Slurm: charliecloud (the singularity stand-in cannot bind a node
# the image lacks; the real SingularityCE is checked through berth run below)
GPU_RUNTIMES="charliecloud"

@test "image conventions: NVIDIA_DRIVER_CAPABILITIES picks driver files; NVIDIA_VISIBLE_DEVICES void and none" {
	all=$(make_image cuda-all.tar legacy --tag berth/cuda:all \
		--env NVIDIA_VISIBLE_DEVICES=all --env NVIDIA_DRIVER_CAPABILITIES=all)
	void=$(make_image cuda-void.tar legacy --tag berth/cuda:void --env NVIDIA_VISIBLE_DEVICES=void)
	none=$(make_image cuda-none.tar legacy --tag berth/cuda:none \
		--env NVIDIA_VISIBLE_DEVICES=none --env NVIDIA_DRIVER_CAPABILITIES=utility)
	bad=$(make_image cuda-bad.tar legacy --tag berth/cuda:bad \
		--env NVIDIA_VISIBLE_DEVICES=all --env NVIDIA_DRIVER_CAPABILITIES=compute,bogus)
	for rt in $GPU_RUNTIMES; do
		C="--container-runtime=$rt"
		# an image that says nothing: the job's GPU, utility and compute
		# (libnvidia-container's default), no graphics
		run as_user srun "$C" --gres=gpu:1 --container-image="$IMG" sh -c "$LIBS"
		echo "[$rt plain] $output"
		[ "$status" -eq 0 ]
		[[ "$output" == *"lib libnvidia-ml.so.1"* && "$output" == *"lib libcuda.so.1"* ]]
		[[ "$output" != *"libGLX_nvidia"* ]]
		[ "$(grep -c '^node /dev/nvidia[0-9]' <<<"$output")" -eq 1 ]
		# all capabilities, and "all" GPUs is still the step's one
		run as_user srun "$C" --gres=gpu:1 --container-image="$all" sh -c "$LIBS"
		echo "[$rt all] $output"
		[ "$status" -eq 0 ]
		[[ "$output" == *"lib libGLX_nvidia.so.0"* && "$output" == *"lib libcuda.so.1"* ]]
		[ "$(grep -c '^node /dev/nvidia[0-9]' <<<"$output")" -eq 1 ]
		# void: the image wants no GPU; a named device is still given
		run as_user srun "$C" --gres=gpu:1 --container-image="$void" sh -c "$LIBS"
		echo "[$rt void] $output"
		[ "$status" -eq 0 ]
		[[ "$output" != *"lib "* && "$output" != *"node /dev/nvidia"* ]]
		run as_user srun "$C" --container-devices=nvidia.com/gpu=1 --container-image="$void" \
			sh -c "$LIBS"
		echo "[$rt void, named] $output"
		[ "$status" -eq 0 ]
		[[ "$output" == *"node /dev/nvidia1"* && "$output" == *"lib libnvidia-ml.so.1"* ]]
		# none: the driver (utility only here), no GPU node
		run as_user srun "$C" --gres=gpu:1 --container-image="$none" sh -c "$LIBS"
		echo "[$rt none] $output"
		[ "$status" -eq 0 ]
		[[ "$output" == *"lib libnvidia-ml.so.1"* && "$output" == *"node /dev/nvidiactl"* ]]
		[[ "$output" != *"libcuda"* && "$output" != *"node /dev/nvidia"[0-9]* ]]
		run as_user srun "$C" --gres=gpu:1 --container-image="$bad" true
		echo "[$rt bad] $output"
		[ "$status" -ne 0 ]
		[[ "$output" == *"NVIDIA_DRIVER_CAPABILITIES has 'bogus'"* ]]
	done
}

@test "srun -n 2 --gpus-per-task=1: each task's container has its own GPU" {
	for rt in charliecloud docker; do
		run as_user srun -n 2 --gpus-per-task=1 --container-runtime="$rt" \
			--container-image="$IMG" sh -c 'nvidia-smi -L | sed "s/^/task $SLURM_PROCID: /"'
		echo "[$rt] $output"
		[ "$status" -eq 0 ]
		[ "$(grep -c '^task [01]: GPU [01]: Stand-in' <<<"$output")" -eq 2 ]
		[ "$(grep -o '^task [01]: GPU [01]' <<<"$output" | cut -d' ' -f4 | sort -u | wc -l)" -eq 2 ]
	done
	# and each task's device cgroup lets it open the node it sees
	# (Slurm numbers a task's GPUs from 0 under ConstrainDevices)
	run as_user srun -n 2 --gpus-per-task=1 --container-image="$IMG" \
		sh -c 'for f in /dev/nvidia[01]; do [ -c $f ] && cat $f </dev/null 2>&1 | sed "s/^/task $SLURM_PROCID: /"; done; true'
	echo "$output"
	[ "$(grep -c "^task [01]: cat: can't open '/dev/nvidia[01]': No such device or address" <<<"$output")" -eq 2 ]
	[[ "$output" != *"not permitted"* ]]
}

@test "ConstrainDevices: a GPU outside the step's allocation cannot be opened, even when named" {
	run as_user srun --gres=gpu:1 --container-image="$IMG" \
		--container-devices=nvidia.com/gpu=0,nvidia.com/gpu=1 \
		sh -c 'echo "gpus=$SLURM_STEP_GPUS"; for f in /dev/nvidia0 /dev/nvidia1; do cat $f </dev/null; done; true'
	echo "$output"
	[ "$status" -eq 0 ]
	mine=$(sed -n 's/^gpus=\([01]\)$/\1/p' <<<"$output")
	[ -n "$mine" ]
	other=$((1 - mine))
	[[ "$output" == *"can't open '/dev/nvidia$mine': No such device or address"* ]]
	[[ "$output" == *"can't open '/dev/nvidia$other': Operation not permitted"* ]]
}

@test "docker: the step's GPU as a device, the driver files, the env; a GPU outside the allocation refused" {
	run as_user srun --container-runtime=docker --gres=gpu:1 --container-image="$IMG" \
		sh -c "$SEE; $LIBS"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(grep -c '^GPU [0-9]: Stand-in' <<<"$output")" -eq 1 ]
	[ "$(grep '^node /dev/nvidia[0-9]' <<<"$output" | sort -u | wc -l)" -eq 1 ]
	[[ "$output" == *"node /dev/nvidiactl"* && "$output" == *"std=yes"* ]]
	[[ "$output" == *"library: /usr/lib/libnvidia-ml.so.1"* && "$output" == *"linked"* ]]
	[[ "$output" == *"lib libcuda.so.1"* && "$output" != *"libGLX_nvidia"* ]]
	# dockerd's device cgroup is not the step's: berth refuses what the
	# step's denies, even when named
	run as_user srun --container-runtime=docker --gres=gpu:1 --container-image="$IMG" \
		--container-devices=nvidia.com/gpu=0,nvidia.com/gpu=1 true
	echo "$output"
	[ "$status" -ne 0 ]
	[[ "$output" == *"is not one this step was given"* ]]
	# and a job the cgroup gives no GPU gets none, whatever its
	# environment says (the task's variables are the job's to set)
	run as_user bash -c "export SLURM_STEP_GPUS=1 CUDA_VISIBLE_DEVICES=1; srun \
		--container-runtime=docker --container-image='$IMG' ls /dev"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" != *"nvidia"* ]]
}

@test "--container-devices outside AllowedDevices, or not a CDI name: refused at submission" {
	run as_user srun --container-image="$IMG" --container-devices=example.com/fpga=0 true
	echo "$output"
	[ "$status" -ne 0 ]
	[[ "$output" == *"example.com/fpga=0 is not among the devices this site allows"* ]]
	run as_user srun --container-image="$IMG" --container-devices=gpu0 true
	[ "$status" -ne 0 ]
	[[ "$output" == *"not a CDI device name"* ]]
}

@test "a malformed CDI spec: the GPU step fails naming the file and the field, and leaves nothing" {
	printf 'cdiVersion: 0.5.0\nkind: example.com/broken\ndevices:\n- name: x\n  containerEdits:\n    mounts:\n    - {hostPath: lib, containerPath: /lib2}\n' \
		>"$BERTH_CLUSTER_DIR/cdi/zz-broken.yaml"
	chmod 644 "$BERTH_CLUSTER_DIR/cdi/zz-broken.yaml"
	d=$(job_dir)
	run as_user srun --gres=gpu:1 --container-image="$IMG" sh -c "touch $d/ran"
	echo "$output"
	[ "$status" -ne 0 ]
	[[ "$output" == *"zz-broken.yaml"* ]]
	[[ "$output" == *"devices[0].containerEdits.mounts[0].hostPath"* ]]
	[ ! -e "$d/ran" ]
	# nothing of it stays: no berth process of the test user, no layer
	! pgrep -u "${BERTH_TEST_USER:-berthtest}" -f 'berth launch|ch-run' >/dev/null
	# a job that asks for no device still runs, and is told
	run as_user srun --container-image="$IMG" true
	[ "$status" -eq 0 ]
	[[ "$output" == *"warning: CDI spec"*"zz-broken.yaml"* ]]
}

@test "a spec others may write is refused, naming it" {
	printf 'cdiVersion: 0.5.0\nkind: example.com/w\ndevices:\n- name: x\n  containerEdits: {}\n' \
		>"$BERTH_CLUSTER_DIR/cdi/zz-broken.yaml"
	chmod 666 "$BERTH_CLUSTER_DIR/cdi/zz-broken.yaml"
	run as_user srun --gres=gpu:1 --container-image="$IMG" true
	echo "$output"
	[ "$status" -ne 0 ]
	[[ "$output" == *"zz-broken.yaml may be written by others"* ]]
}

@test "berth run --device: charliecloud and the setuid SingularityCE get the named GPU only" {
	sing=/opt/singularity-3.4.2/bin/singularity
	[ -x "$sing" ] || skip "no setuid SingularityCE 3.4.2 at $sing"
	d=$(job_dir)
	uid=$(id -u "${BERTH_TEST_USER:-berthtest}")
	install -d -m 0700 -o "$uid" "$d/cache" "$d/cache/$uid"
	printf 'CdiSpecDirs=%s\nSingularityPath=%s\n' "$BERTH_CLUSTER_DIR/cdi" "$sing" >"$d/berth.conf"
	chmod 644 "$d/berth.conf"
	export BERTH_CONFIG=$d/berth.conf # submit.sh passes BERTH_* on
	for rt in charliecloud singularity; do
		run as_user "$BERTH_CLUSTER_DIR/bin/berth" run \
			--runtime "$rt" --cache-dir "$d/cache" --image "$IMG" \
			--device nvidia.com/gpu=1 -- sh -c "$SEE; $LIBS"
		echo "[$rt] $output"
		[ "$status" -eq 0 ]
		[ "$(grep -c '^GPU [0-9]: Stand-in' <<<"$output")" -eq 1 ]
		[[ "$output" == *"GPU 1: Stand-in"* ]]
		[[ "$output" == *"library: /usr/lib/libnvidia-ml.so.1"* ]]
		[[ "$output" == *"std=yes"* ]]
		# the image says nothing: utility and compute, not graphics
		[[ "$output" == *"lib libcuda.so.1"* && "$output" != *"libGLX_nvidia"* ]]
		# the container's NVIDIA_DRIVER_CAPABILITIES (here from --env)
		run as_user "$BERTH_CLUSTER_DIR/bin/berth" run \
			--runtime "$rt" --cache-dir "$d/cache" --image "$IMG" \
			--env NVIDIA_DRIVER_CAPABILITIES=graphics \
			--device nvidia.com/gpu=1 -- sh -c "$LIBS"
		echo "[$rt graphics] $output"
		[ "$status" -eq 0 ]
		[[ "$output" == *"lib libGLX_nvidia.so.0"* && "$output" == *"node /dev/nvidia1"* ]]
		[[ "$output" != *"libcuda"* && "$output" != *"libnvidia-ml"* ]]
	done
}
