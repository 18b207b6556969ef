#!/usr/bin/env python3
"""A Debian-like docker-save archive from a chroot: 3 gzip layers of real
files (etc+usr/sbin, usr/share, usr/lib/python3*).  usage: mkdistro.py ROOT OUT"""
import gzip, hashlib, io, json, os, sys, tarfile, glob
root, out = sys.argv[1], sys.argv[2]
groups = [["etc", "usr/sbin"], ["usr/share"], [os.path.relpath(p, root) for p in glob.glob(root + "/usr/lib/python3*")]]
layers, diff_ids = [], []
for g in groups:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as t:
        for p in g:
            t.add(os.path.join(root, p), arcname=p)
    data = raw.getvalue()
    diff_ids.append("sha256:" + hashlib.sha256(data).hexdigest())
    gz = gzip.compress(data, 6)
    layers.append(gz)
cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["/bin/sh"]},
                  "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
cfg_name = hashlib.sha256(cfg).hexdigest() + ".json"
with tarfile.open(out, "w") as t:
    def put(name, data):
        ti = tarfile.TarInfo(name); ti.size = len(data); t.addfile(ti, io.BytesIO(data))
    names = []
    for i, l in enumerate(layers):
        n = "layer%d/layer.tar" % i; names.append(n); put(n, l)
    put(cfg_name, cfg)
    put("manifest.json", json.dumps([{"Config": cfg_name, "RepoTags": ["berth/distro:1"], "Layers": names}]).encode())
