#!/bin/bash
# mpi-image.sh OUT.tar: a docker-save archive (legacy layout, one layer) of
# the busybox test rootfs plus tests/multinode/ring.c built with the host's
# MPICH (mpicc), the shared libraries it loads and UCX's transport modules:
# the image's MPI is the host's own, as sites do it.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=$1
command -v mpicc >/dev/null || { echo "mpi-image.sh: no mpicc (apt-get install mpich libmpich-dev)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 "$here/../harness/fixtures/mkimage.py" rootfs "$work/root" >/dev/null
mpicc -O2 -o "$work/root/usr/bin/ring" "$here/ring.c"
ucx=$(dirname "$(ldd "$work/root/usr/bin/ring" | awk '/libucp/ { print $3 }')")/ucx
objs=("$work/root/usr/bin/ring")
[ -d "$ucx" ] && objs+=("$ucx"/*.so.0)
# every library those load, at its own path (ld.so finds them there)
for lib in $(ldd "${objs[@]}" 2>/dev/null | awk '/=> \// { print $3 } /^\t\/lib/ { print $1 }' | sort -u); do
	mkdir -p "$work/root$(dirname "$lib")"
	cp -L "$lib" "$work/root$lib"
done
if [ -d "$ucx" ]; then
	mkdir -p "$work/root$ucx"
	cp -a "$ucx"/*.so* "$work/root$ucx/"
fi
python3 - "$work/root" "$out" <<'PY'
import hashlib, io, json, os, sys, tarfile
root, out = sys.argv[1], sys.argv[2]
layer = io.BytesIO()
with tarfile.open(fileobj=layer, mode="w", format=tarfile.PAX_FORMAT) as t:
    for name in sorted(os.listdir(root)):
        t.add(os.path.join(root, name), arcname=name,
              filter=lambda i: (setattr(i, "uid", 0), setattr(i, "gid", 0),
                                setattr(i, "uname", ""), setattr(i, "gname", ""),
                                setattr(i, "mtime", 0), i)[-1])
data = layer.getvalue()
diff = "sha256:" + hashlib.sha256(data).hexdigest()
config = json.dumps({"architecture": "amd64", "os": "linux",
                     "config": {"Env": ["PATH=/usr/local/bin:/usr/bin:/bin"], "Cmd": ["/bin/sh"]},
                     "rootfs": {"type": "layers", "diff_ids": [diff]}}, sort_keys=True).encode()
cid = hashlib.sha256(config).hexdigest()
with tarfile.open(out, "w") as t:
    def put(name, b):
        i = tarfile.TarInfo(name); i.size = len(b); i.mode = 0o644
        t.addfile(i, io.BytesIO(b))
    put(cid + ".json", config)
    put("layer/layer.tar", data)
    put("manifest.json", json.dumps([{"Config": cid + ".json", "RepoTags": ["berth/mpi:1"],
                                      "Layers": ["layer/layer.tar"]}]).encode())
PY
