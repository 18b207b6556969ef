#!/usr/bin/env python3
"""Write the seed corpus of every fuzz target: seeds.py OUTDIR

OUTDIR/<target>/ gets a few small inputs each (existing files are kept, so a
corpus grown by earlier runs stays).  The image archives come from
tests/harness/fixtures/mkimage.py with a 64-byte stand-in for busybox, so a seed is
a few kB and an execution costs microseconds, not a 2 MB hash."""

import io
import json
import os
import struct
import sys
import tarfile
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "harness", "fixtures"))
import mkimage  # noqa: E402

LAYER_MARK = b"\nBERTH-LAYER\n"  # fuzz_flatten.c splits its input here
IMAGE_KINDS = ["legacy", "oci", "multi", "truncated", "no-manifest", "bad-manifest-json",
               "manifest-not-array", "missing-config", "missing-layer", "digest-mismatch",
               "config-digest-mismatch", "dotdot", "absolute", "symlink-escape",
               "symlink-chain", "hardlink-escape", "whiteout-dotdot", "device-nodes", "setuid"]
DIGEST = "sha256:" + "ab" * 32


def put(out, target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, name)
    if not os.path.exists(path):
        with open(path, "wb") as f:
            f.write(data if isinstance(data, bytes) else data.encode())


def image_seeds(out):
    with tempfile.TemporaryDirectory(prefix="berth-seeds-") as tmp:
        image_seeds_in(out, tmp)


def image_seeds_in(out, tmp):
    tiny = os.path.join(tmp, "busybox")
    with open(tiny, "wb") as f:
        f.write(b"#!/bin/sh\n# stand-in for busybox in fuzz seeds\nexit 0\n")
    mkimage.BUSYBOX = tiny
    mkimage.APPLETS = ["sh", "ls"]  # every entry costs syscalls per execution
    runs = [(k, []) for k in IMAGE_KINDS] + [("oci", ["--gzip-layers"]),
                                             ("legacy", ["--gzip-archive"])]
    for kind, extra in runs:
        name = kind + "".join(extra).replace("--", "-")
        path = os.path.join(tmp, name + ".tar")
        saved = sys.stdout
        sys.stdout = io.StringIO()
        try:
            mkimage.main([kind, path] + extra)
        finally:
            sys.stdout = saved
        with open(path, "rb") as f:
            data = f.read()
        put(out, "fuzz_image", name + ".tar", data)
        layers = layer_blobs(data)
        if layers:
            put(out, "fuzz_flatten", name, LAYER_MARK.join(layers))
    put(out, "fuzz_image", "not-a-tar", b"berth: this is not a tar archive\n" + bytes(range(256)))


def layer_blobs(archive):
    """The layers of a docker-save archive, in order, as stored."""
    try:
        t = tarfile.open(fileobj=io.BytesIO(archive))
        manifest = json.load(t.extractfile("manifest.json"))
        return [t.extractfile(name).read() for name in manifest[0]["Layers"]]
    except Exception:  # the malformed kinds: no layers to take
        return []


def docker_seeds(out):
    sel = {"load": 0, "image": 1, "wait": 2, "inspect": 3, "list": 4, "error": 5,
           "status": 6, "stream": 7}
    hexid = "0123456789abcdef" * 4
    seeds = {
        "load": '{"stream":"Loaded image ID: sha256:%s\\n"}\r\n{"stream":"x"}' % hexid,
        "load-name": '{"stream":"Loaded image: berth/test:latest\\n"}',
        "load-error": '{"errorDetail":{"message":"bad"},"error":"bad"}',
        "image": '{"Id":"sha256:%s","Config":{"Env":["A=1"],"Cmd":["sh"]}}' % hexid,
        "wait": '{"StatusCode":137,"Error":null}',
        "wait-error": '{"StatusCode":0,"Error":{"Message":"oops"}}',
        "inspect": '{"State":{"Status":"running","ExitCode":0,"Pid":42}}',
        "list": '[{"Id":"%s"},{"Id":"%s"}]' % (hexid, hexid),
        "error": '{"message":"No such container: x"}',
        "status": "HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\n\r\n",
        "version": "1.41",
    }
    for name, body in seeds.items():
        key = name.split("-")[0]
        s = sel.get(key, 6)
        put(out, "fuzz_docker_api", name, bytes([s]) + body.encode())
    frames = b"".join(bytes([k, 0, 0, 0]) + struct.pack(">I", len(p)) + p
                      for k, p in ((1, b"out\n"), (2, b"err\n"), (0, b"")))
    put(out, "fuzz_docker_api", "stream", bytes([7]) + frames)


def registry_seeds(out):
    layer = {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
             "digest": DIGEST, "size": 10}
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           "digest": "sha256:" + "cd" * 32, "size": 5},
                "layers": [layer, layer]}
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": [{"digest": DIGEST, "platform": {"os": "linux", "architecture": "arm64",
                                                             "variant": "v8"}},
                           {"digest": "sha256:" + "ef" * 32,
                            "platform": {"os": "linux", "architecture": "amd64"}}]}
    put(out, "fuzz_registry", "manifest", b"\0" + json.dumps(manifest).encode())
    put(out, "fuzz_registry", "index", b"\0" + json.dumps(index).encode())
    put(out, "fuzz_registry", "token", b"\1" + b'{"token":"abc.def","expires_in":300}')
    put(out, "fuzz_registry", "access-token", b"\1" + b'{"access_token":"x","expires_in":3}')
    put(out, "fuzz_registry", "challenge",
        b"\2" + b'realm="https://auth.example/token",service="registry.example",scope="x"\n'
        b"WWW-Authenticate: Bearer realm=\"https://a/t\"\nRetry-After: 5\n"
        b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}')
    put(out, "fuzz_registry", "creds",
        b"\3" + b'machine registry.example:5000 login "al ice" password "p\\"w"\ndefault login x\0'
        b'{"auths":{"https://registry.example:5000":{"auth":"dXNlcjpwYXNz"}}}')
    put(out, "fuzz_registry", "creds-json",
        b"\3\0" + b'{"auths":{"registry.example:5000":{"username":"u","password":"p"}}}')


def sif_seeds(out):
    header = bytearray(128)
    header[0:32] = b"#!/usr/bin/env run-singularity\n".ljust(32, b"\0")
    header[32:42] = b"SIF_MAGIC\0"
    header[42:45] = b"01\0"
    header[45:48] = b"02\0"
    n = 2
    data_off = 128 + n * 585
    part = b"hsqs" + bytes(60)
    struct.pack_into("<qqqqqqqq", header, 64, 1700000000, 1700000000, 0, n, 128,
                     n * 585, data_off, len(part) + 16)

    def descr(dtype, did, off, size, extra=b""):
        d = bytearray(585)
        struct.pack_into("<IBIII", d, 0, dtype, 1, did, 0xf0000001, 0)
        struct.pack_into("<qqq", d, 17, off, size, size)
        d[201:201 + len(extra)] = extra
        return bytes(d)

    table = descr(0x4001, 1, data_off, 16) + \
        descr(0x4004, 2, data_off + 16, len(part), struct.pack("<ii", 1, 2) + b"02\0")
    put(out, "fuzz_sif", "primsys.sif", bytes(header) + table + b"bootstrap: x\n\0\0\0" + part)


def text_seeds(out):
    refs = ["ubuntu:22.04", "nvcr.io#nvidia/pytorch:24.05-py3", "myreg#lab/tool:1",
            "docker://[::1]:5000/a/b@sha256:" + "0" * 64, 'etag:"abc 1"',
            "lm:Sun, 29 Nov 2026 23:00:00 GMT"]
    for i, r in enumerate(refs):
        put(out, "fuzz_imageref", "ref%d" % i, r)
    put(out, "fuzz_conf", "mounts",
        b"\0./:/mnt:ro+nosuid,tmpfs:/t:size=1m+mode=0700,/dev/null:/null")
    put(out, "fuzz_conf", "mounts-tmpfs5",
        b"\0tmpfs:/t:nr_inodes=8k+huge=within_size+mpol=bind:0-1+size=10%,umount:/etc/passwd")
    put(out, "fuzz_conf", "name", b"\1build:no_exec")
    put(out, "fuzz_conf", "name-step", b"\1" + b"1234.0:exec")
    put(out, "fuzz_conf", "conf",
        b"\2DefaultRuntime=singularity\nAllowedRuntimes=charliecloud,singularity\n"
        b"CacheMaxSize=10G\nContainerScope=user\nDockerAllowedMounts=/data,/scratch\n"
        b"PyxisEnvCompat=yes\n")
    put(out, "fuzz_conf", "args", b"\3DefaultRuntime=docker AllowedRuntimes=docker PullParallel=8")


def main():
    out = sys.argv[1]
    image_seeds(out)
    docker_seeds(out)
    registry_seeds(out)
    sif_seeds(out)
    text_seeds(out)


if __name__ == "__main__":
    main()
