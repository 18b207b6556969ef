#!/bin/bash
# The ready check for a real NVIDIA GPU (issue 28).  On a machine with a
# GPU and its driver, as root:
#   1. a CDI spec from the host's driver: `nvidia-ctk cdi generate` where
#      installed (hooks other than the ones berth does itself dropped), else
#      one built here from /dev/nvidia* and the driver libraries and tools
#      `ldconfig -p` and PATH list, into a private CdiSpecDirs folder;
#   2. `nvidia-smi -L` in a small image through `berth run --device` for
#      each runtime given (default: charliecloud singularity);
#   3. with a Slurm cluster whose node has `Gres=gpu:N` (BERTH_GPU_SLURM=1,
#      cluster from tests/harness/cluster/start.sh with the real gres.conf),
#      `srun --gres=gpu:1 --container-image=IMG nvidia-smi -L` per runtime.
# Passes when every run lists at least one GPU.  Needs: a test user
# (BERTH_TEST_USER, default berthtest), the built berth (BUILD, default
# build), and IMG: a docker-save archive of an image with glibc, which
# nvidia-smi needs (`docker save debian:12-slim -o debian.tar`; berth's
# busybox test images have none).
# Usage: tests/gpu/real-gpu.sh [RUNTIME...]
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
USER_=${BERTH_TEST_USER:-berthtest}
RUNTIMES=("$@")
[ ${#RUNTIMES[@]} -gt 0 ] || RUNTIMES=(charliecloud singularity)
W=$(mktemp -d /var/tmp/berth-gpu.XXXXXX)
trap 'rm -rf "$W"' EXIT
chmod 755 "$W"
fail=0

say() { echo "real-gpu: $*"; }
[ "$(id -u)" -eq 0 ] || { say "run as root"; exit 2; }
ls /dev/nvidia[0-9]* >/dev/null 2>&1 || { say "no /dev/nvidiaN: no GPU or no driver here"; exit 2; }
command -v nvidia-smi >/dev/null || { say "no nvidia-smi on the host"; exit 2; }
nvidia-smi -L

# ---- 1. the spec
install -d -m 0755 "$W/cdi"
if command -v nvidia-ctk >/dev/null; then
    nvidia-ctk cdi generate --output="$W/cdi/nvidia.json" --format=json
    # berth does create-symlinks, update-ldcache and chmod itself and
    # refuses other hooks (enable-cuda-compat): those are dropped here.
    python3 - "$W/cdi/nvidia.json" <<'PY'
import json, sys
p = sys.argv[1]
s = json.load(open(p))
DONE = {"create-symlinks", "update-ldcache", "chmod"}
def keep(h):
    a = h.get("args", [])
    name = a[2] if len(a) > 2 and a[1] == "hook" else a[1] if len(a) > 1 else ""
    return name in DONE
for e in [s.get("containerEdits")] + [d.get("containerEdits") for d in s["devices"]]:
    if e and "hooks" in e:
        e["hooks"] = [h for h in e["hooks"] if keep(h)]
json.dump(s, open(p, "w"), indent=1)
PY
else
    python3 - "$W/cdi/nvidia.json" <<'PY'
import glob, json, os, re, subprocess, sys
nodes = lambda paths: [{"path": p} for p in paths if os.path.exists(p)]
devs = []
for p in sorted(glob.glob("/dev/nvidia[0-9]*")):
    devs.append({"name": re.sub(r"\D", "", os.path.basename(p)),
                 "containerEdits": {"deviceNodes": [{"path": p}]}})
devs.append({"name": "all", "containerEdits": {"deviceNodes":
             [{"path": p} for p in sorted(glob.glob("/dev/nvidia[0-9]*"))]}})
libs = set()
for line in subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout.splitlines():
    m = re.search(r"(lib(nvidia|cuda)[^ ]*\.so[^ ]*) .*=> (\S+)", line)
    if m and "x86-64" in line:
        libs.add(m.group(3))
mounts = [{"hostPath": l, "containerPath": l, "options": ["ro", "nosuid", "nodev", "bind"]}
          for l in sorted(libs)]
for tool in ("nvidia-smi", "nvidia-debugdump", "nvidia-persistenced"):
    for d in ("/usr/bin", "/usr/local/bin"):
        if os.path.exists(f"{d}/{tool}"):
            mounts.append({"hostPath": f"{d}/{tool}", "containerPath": f"/usr/bin/{tool}",
                           "options": ["ro", "nosuid", "nodev", "bind"]})
            break
spec = {"cdiVersion": "0.5.0", "kind": "nvidia.com/gpu", "devices": devs,
        "containerEdits": {
            "deviceNodes": nodes(["/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools"]),
            "mounts": mounts,
            "env": ["LD_LIBRARY_PATH=" + ":".join(sorted({os.path.dirname(l) for l in libs}))]}}
json.dump(spec, open(sys.argv[1], "w"), indent=1)
PY
fi
chmod 0644 "$W/cdi/nvidia.json"
say "spec: $W/cdi/nvidia.json ($(grep -c '"name"' "$W/cdi/nvidia.json") devices)"
printf 'CdiSpecDirs=%s\nAllowedDevices=nvidia.com/gpu=*\nAllowedRuntimes=charliecloud,singularity,docker\n' \
    "$W/cdi" >"$W/berth.conf"
[ -z "${BERTH_TEST_SINGULARITY:-}" ] || echo "SingularityPath=$BERTH_TEST_SINGULARITY" >>"$W/berth.conf"
chmod 644 "$W/berth.conf"

# ---- 2. berth run
[ -r "${IMG:-}" ] || { say "set IMG to a docker-save archive of an image with glibc"; exit 2; }
install -d -m 0700 -o "$USER_" "$W/cache" "$W/cache/$(id -u "$USER_")"
for rt in "${RUNTIMES[@]}"; do
    out=$(setpriv --reuid "$USER_" --regid "$USER_" --init-groups env -i PATH=/usr/bin:/bin \
          USER="$USER_" HOME="$W" BERTH_CONFIG="$W/berth.conf" \
          "$BUILD/berth" run --runtime "$rt" --cache-dir "$W/cache" --image "$IMG" \
          --device nvidia.com/gpu=all -- nvidia-smi -L 2>&1) || true
    if grep -q '^GPU [0-9]' <<<"$out"; then say "berth run [$rt]: ok"; else
        say "berth run [$rt]: FAILED"; echo "$out"; fail=1; fi
done

# ---- 3. through Slurm
if [ "${BERTH_GPU_SLURM:-0}" = 1 ]; then
    # shellcheck disable=SC1091
    . /var/tmp/berth-cluster/env
    for rt in "${RUNTIMES[@]}"; do
        out=$(tests/harness/cluster/submit.sh srun --gres=gpu:1 --container-runtime="$rt" \
              --container-image="$IMG" nvidia-smi -L 2>&1) || true
        if grep -q '^GPU [0-9]' <<<"$out"; then say "srun [$rt]: ok"; else
            say "srun [$rt]: FAILED"; echo "$out"; fail=1; fi
    done
fi
exit $fail
