#!/bin/bash
# mkindex.sh OUT_OCI_DIR ARCHIVE_AMD64 ARCHIVE_ARM64 [TAG]
#
# Builds an OCI image layout whose one top-level entry (ref name TAG,
# default "latest") is an image index listing two image manifests:
# linux/amd64 from ARCHIVE_AMD64 and linux/arm64 (variant v8) from
# ARCHIVE_ARM64 (docker-save archives, e.g. from tests/harness/fixtures/mkimage.py).
# Each config's architecture/os/variant is rewritten to match its platform
# (mkimage.py writes the host's), so the configs differ from the archives'.
# Push it with:  skopeo copy --all --preserve-digests oci:OUT:TAG docker://R/REPO:TAG
# (or push.sh oci:OUT:TAG REPO:TAG).  Prints one JSON line: the digests of
# the index, of each platform manifest and of each config.
set -euo pipefail

if [ $# -lt 3 ] || [ $# -gt 4 ]; then
    echo "usage: mkindex.sh OUT_OCI_DIR ARCHIVE_AMD64 ARCHIVE_ARM64 [TAG]" >&2
    exit 2
fi
out=$1 amd64=$2 arm64=$3 tag=${4:-latest}
for a in "$amd64" "$arm64"; do [ -f "$a" ] || { echo "mkindex.sh: $a: no such archive" >&2; exit 1; }; done
if [ -e "$out" ] && [ -n "$(ls -A "$out")" ]; then
    echo "mkindex.sh: $out exists and is not empty" >&2
    exit 1
fi

# skopeo writes gzip layers and OCI configs into the layout, so a later
# push to a registry can keep every digest (--preserve-digests).
skopeo --insecure-policy copy --quiet "docker-archive:$amd64" "oci:$out:berth-mkindex-amd64"
skopeo --insecure-policy copy --quiet "docker-archive:$arm64" "oci:$out:berth-mkindex-arm64"

python3 - "$out" "$tag" <<'EOF'
import hashlib, json, os, sys

out, tag = sys.argv[1], sys.argv[2]
blobs = os.path.join(out, "blobs", "sha256")

def read(digest):
    with open(os.path.join(blobs, digest.split(":", 1)[1]), "rb") as f:
        return f.read()

def write(obj):
    data = json.dumps(obj, separators=(",", ":")).encode()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with open(os.path.join(blobs, digest[7:]), "wb") as f:
        f.write(data)
    return digest, len(data)

with open(os.path.join(out, "index.json")) as f:
    top = json.load(f)
by_ref = {m["annotations"]["org.opencontainers.image.ref.name"]: m for m in top["manifests"]}

entries, result = [], {"tag": tag, "manifests": {}, "configs": {}}
for arch, variant in (("amd64", None), ("arm64", "v8")):
    desc = by_ref["berth-mkindex-" + arch]
    manifest = json.loads(read(desc["digest"]))
    config = json.loads(read(manifest["config"]["digest"]))
    config["architecture"], config["os"] = arch, "linux"
    config.pop("variant", None)
    platform = {"architecture": arch, "os": "linux"}
    if variant:
        config["variant"] = platform["variant"] = variant
    cdigest, csize = write(config)
    manifest["config"]["digest"], manifest["config"]["size"] = cdigest, csize
    mdigest, msize = write(manifest)
    entries.append({"mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": mdigest, "size": msize, "platform": platform})
    result["manifests"][arch], result["configs"][arch] = mdigest, cdigest

index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
         "manifests": entries}
idigest, isize = write(index)
result["index"] = idigest
top = {"schemaVersion": 2, "manifests": [{
    "mediaType": "application/vnd.oci.image.index.v1+json", "digest": idigest,
    "size": isize, "annotations": {"org.opencontainers.image.ref.name": tag}}]}
with open(os.path.join(out, "index.json"), "w") as f:
    json.dump(top, f, separators=(",", ":"))

# Drop the blobs nothing references any more (the original configs and
# manifests), so the layout holds exactly one image index.
keep = {idigest}
for e in entries:
    keep.add(e["digest"])
    m = json.loads(read(e["digest"]))
    keep.add(m["config"]["digest"])
    keep.update(l["digest"] for l in m["layers"])
for name in os.listdir(blobs):
    if "sha256:" + name not in keep:
        os.remove(os.path.join(blobs, name))
print(json.dumps(result, sort_keys=True))
EOF
