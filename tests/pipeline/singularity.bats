#!/usr/bin/env bats
# The singularity runtime's images, made by berth itself (no `singularity
# build`): a SIF (SquashFS inside) or a sandbox folder, both with the
# /.singularity.d metadata, per SingularityImageFormat.  Checked with the
# real siftool and unsquashfs, and run through the singularity binary the
# suite uses (the stand-in here, the real Apptainer with
# BERTH_TEST_SINGULARITY and in tests/harness/matrix/).
#
# Run as root: bats --tap tests/pipeline/singularity.bats

REPO=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
BERTH=${BUILD:-$REPO/build}/berth
MKIMAGE=$REPO/tests/harness/fixtures/mkimage.py
SING=${BERTH_TEST_SINGULARITY:-$REPO/tests/harness/fakes/singularity}
# the SIF's name says its compression: zstd (plain image.sif) for
# Apptainer, lz4 for SingularityCE, which reads no zstd
SIFLEAF=image.sif
"$SING" --version 2>/dev/null | grep -q '^apptainer' || SIFLEAF=image.lz4.sif

setup_file() {
	[ -x "$BERTH" ] || { echo "build/berth missing: run make -j2 all" >&2; return 1; }
	WORK=$(mktemp -d /var/tmp/berth-sing-test.XXXXXX)
	chmod 755 "$WORK"
	python3 "$MKIMAGE" legacy "$WORK/img.tar" --tag berth/sing:1 \
		--env IMG_VAR=from-image --entrypoint '["/bin/echo"]' --cmd '["hello"]' --label org.berth=yes >/dev/null
	chmod 644 "$WORK/img.tar"
	export WORK
}

teardown_file() {
	[ -n "${WORK:-}" ] && rm -rf "$WORK"
}

# pull FORMAT: stage img.tar with that SingularityImageFormat into a fresh
# cache; sets P (the folder), U (the user cache) and DIGEST.
pull() {
	P=$(mktemp -d "$WORK/run.XXXXXX")
	mkdir -p "$P/cache"
	printf 'SingularityPath=%s\nSingularityImageFormat=%s\n' "$SING" "$1" >"$P/berth.conf"
	run env BERTH_CONFIG="$P/berth.conf" "$BERTH" pull --runtime singularity \
		--cache-dir "$P/cache" --singularity "$SING" "$WORK/img.tar"
	echo "$output"
	[ "$status" -eq 0 ]
	DIGEST=${output%% *}
	U=$P/cache/0
	ENTRY=$U/images/${DIGEST#sha256:}
}

@test "sif: one SIF file, its partition SquashFS, read by the real siftool" {
	pull sif
	[ -f "$ENTRY/$SIFLEAF" ]
	[ ! -e "$ENTRY/sandbox" ]
	[ "$(head -c 32 "$ENTRY/$SIFLEAF")" = "#!/usr/bin/env run-singularity" ]
	command -v siftool >/dev/null || skip "siftool not installed"
	run siftool list "$ENTRY/$SIFLEAF"
	echo "$output"
	[ "$status" -eq 0 ]
	grep -q "FS (Squashfs/\*System/amd64)" <<<"$output"
	grep -q "Def.FILE" <<<"$output"
	grep -q "JSON.Generic" <<<"$output"
}

@test "sif: the partition holds the image and the metadata apptainer build writes" {
	pull sif
	off=$(python3 -c 'import struct,sys
f=open(sys.argv[1],"rb"); h=f.read(128); n,off=struct.unpack("<q8x8xq",h[72:104])[0],struct.unpack("<q",h[96:104])[0]
f.seek(off)
for _ in range(n):
	d=f.read(585)
	t,used=struct.unpack("<i?",d[:5]); o=struct.unpack("<q",d[17:25])[0]; ft,pt=struct.unpack("<ii",d[201:209])
	if used and t==0x4004 and pt==2: print(o); break' "$ENTRY/$SIFLEAF")
	[ -n "$off" ]
	run unsquashfs -o "$off" -lls "$ENTRY/$SIFLEAF"
	[ "$status" -eq 0 ]
	grep -q " squashfs-root/etc/only-in-image$" <<<"$output"
	grep -q "squashfs-root/.singularity.d/env/10-docker2singularity.sh$" <<<"$output"
	grep -q "squashfs-root/.singularity.d/runscript$" <<<"$output"
	grep -q "squashfs-root/.singularity.d/labels.json$" <<<"$output"
	# every file root's, as apptainer build makes it (-all-root)
	! grep -v "^Parallel\|^$\|^[^dl-]" <<<"$output" | grep -q -v " root/root "
}

@test "sif: apptainer inspect reads berth's SIF like one from apptainer build (real Apptainer only)" {
	"$SING" --version | grep -q '^apptainer version' && [ -z "$("$SING" --version | grep berth-fake)" ] ||
		skip "needs the real Apptainer (BERTH_TEST_SINGULARITY; the version matrix runs it)"
	pull sif
	run "$SING" inspect --labels "$ENTRY/$SIFLEAF"
	echo "$output"
	[ "$status" -eq 0 ]
	grep -q "org.berth: yes" <<<"$output"
	run "$SING" inspect --runscript "$ENTRY/$SIFLEAF"
	[ "$status" -eq 0 ]
	grep -q "/bin/echo" <<<"$output"
	run "$SING" inspect --environment "$ENTRY/$SIFLEAF"
	[ "$status" -eq 0 ]
	grep -q 'IMG_VAR' <<<"$output"
}

@test "sandbox: the flattened folder with /.singularity.d, the image's Env and runscript" {
	pull sandbox
	[ -d "$ENTRY/sandbox" ]
	[ ! -e "$ENTRY/$SIFLEAF" ]
	[ "$(cat "$ENTRY/sandbox/etc/only-in-image")" = only-in-image ]
	grep -qx 'export IMG_VAR="${IMG_VAR:-"from-image"}"' "$ENTRY/sandbox/.singularity.d/env/10-docker2singularity.sh"
	grep -q "/bin/echo" "$ENTRY/sandbox/.singularity.d/runscript"
	grep -q '"org.berth": "yes"' "$ENTRY/sandbox/.singularity.d/labels.json"
}

@test "both formats run, with the image's Env, through $(basename "$SING")" {
	for f in sif sandbox; do
		pull "$f"
		run env BERTH_CONFIG="$P/berth.conf" "$BERTH" run --runtime singularity \
			--cache-dir "$P/cache" --image "$WORK/img.tar" -- sh -c 'cat /etc/only-in-image; echo "$IMG_VAR"'
		echo "$f: $output"
		[ "$status" -eq 0 ]
		[ "$output" = $'only-in-image\nfrom-image' ]
	done
}

# SingularityImageFormat=auto where no setuid starter mounts a SIF (the
# stand-in and Apptainer 1.4.5 run on user namespaces): ImageStorage
# decides.  squashfs/auto keep one SIF whose SquashFS berth mounts with
# squashfuse in the step's own namespace (the runtime is handed a folder,
# as fast to start as a sandbox); tree keeps the sandbox.  The image's
# files and Env arrive either way, and squashfuse ends with the step.
# storage ST [SQUASHFUSE]: run img.tar with ImageStorage=ST, verbose
storage() {
	P=$(mktemp -d "$WORK/run.XXXXXX")
	mkdir -p "$P/cache"
	printf 'SingularityPath=%s\nImageStorage=%s\nSquashfusePath=%s\n' "$SING" "$1" \
		"${2:-/usr/bin/squashfuse_ll}" >"$P/berth.conf"
	run env BERTH_CONFIG="$P/berth.conf" "$BERTH" run --runtime singularity --verbose \
		--cache-dir "$P/cache" --image "$WORK/img.tar" -- sh -c 'cat /etc/only-in-image; echo "$IMG_VAR"'
	echo "ImageStorage=$1: $output"
	ENTRY=$(echo "$P"/cache/0/images/*)
}

@test "SingularityImageFormat=auto, no setuid starter: ImageStorage=squashfs|auto keep a SIF berth mounts, tree a sandbox" {
	"$SING" --version | grep -q '^apptainer' || skip "an installation on user namespaces only"
	[ -x /usr/bin/squashfuse_ll ] && [ -r /dev/fuse ] || skip "needs squashfuse_ll and /dev/fuse"
	# a squashfuse without -o uid (Debian 12's 0.1.104) would show the SIF's
	# files as nobody's: berth keeps sandboxes then, and says so
	owner=yes
	grep -aq -- "-o uid=N" /usr/bin/squashfuse_ll || owner=no
	for st in squashfs auto tree; do
		storage "$st"
		if [ "$st" = squashfs ] && [ "$owner" = no ]; then
			[ "$status" -eq 125 ]
			grep -q "ImageStorage=squashfs, but /usr/bin/squashfuse_ll (SquashfusePath) cannot show the image's files as the user's (no -o uid" <<<"$output"
			continue
		fi
		[ "$status" -eq 0 ]
		[[ "$output" == *$'only-in-image\nfrom-image' ]]
		if [ "$st" = tree ]; then
			[ -d "$ENTRY/sandbox" ]
			[ ! -e "$ENTRY/$SIFLEAF" ]
			grep -q "^berth: singularity image: sandbox (auto: .*ImageStorage=tree: a sandbox folder" <<<"$output"
		elif [ "$owner" = no ]; then
			[ -d "$ENTRY/sandbox" ]
			[ ! -e "$ENTRY/$SIFLEAF" ]
			grep -q "^berth: singularity image: sandbox (auto: .*ImageStorage=auto: .*no -o uid" <<<"$output"
		else
			[ -f "$ENTRY/$SIFLEAF" ]
			[ ! -e "$ENTRY/sandbox" ]
			grep -q "^berth: singularity image: sif, mounted by berth (auto: .*ImageStorage=$st: one SIF" <<<"$output"
			# squashfuse served it, and ends with the step (bounded poll)
			for _ in $(seq 50); do pgrep -f "squashfuse.*$ENTRY" >/dev/null || break; sleep 0.1; done
			! pgrep -af "squashfuse.*$ENTRY"
		fi
	done
	# no squashfuse: auto keeps a sandbox and says why, verbose or not;
	# squashfs is refused with the fix
	storage auto /nonexistent/squashfuse_ll
	[ "$status" -eq 0 ]
	[ -d "$ENTRY/sandbox" ]
	[ ! -e "$ENTRY/$SIFLEAF" ]
	grep -q "^berth: singularity image: sandbox (auto: .*cannot run /nonexistent/squashfuse_ll" <<<"$output"
	run env BERTH_CONFIG="$P/berth.conf" "$BERTH" run --runtime singularity \
		--cache-dir "$P/cache" --image "$WORK/img.tar" -- true
	[ "$status" -eq 0 ]
	grep -q "^berth: singularity images here: sandbox (auto: .*cannot run /nonexistent/squashfuse_ll" <<<"$output"
	storage squashfs /nonexistent/squashfuse_ll
	[ "$status" -eq 125 ]
	grep -q "ImageStorage=squashfs, but cannot run /nonexistent/squashfuse_ll.*set ImageStorage=tree or auto" <<<"$output"
	[ ! -e "$ENTRY/sandbox" ]
	[ ! -e "$ENTRY/$SIFLEAF" ]
}

@test "a SIF or SquashFS file given by the user runs as it is, unconverted" {
	pull sif
	cp "$ENTRY/$SIFLEAF" "$WORK/user.sif"
	run env BERTH_CONFIG="$P/berth.conf" "$BERTH" run --runtime singularity --cache-dir "$P/cache" --image "$WORK/user.sif" \
		-- cat /etc/only-in-image
	[ "$status" -eq 0 ]
	[ "$output" = only-in-image ]
	pull sandbox
	mksquashfs "$ENTRY/sandbox" "$WORK/user.sqfs" -quiet -all-root -noappend >/dev/null
	run env BERTH_CONFIG="$P/berth.conf" "$BERTH" run --runtime singularity --cache-dir "$P/cache" --image "$WORK/user.sqfs" \
		-- cat /etc/only-in-image
	[ "$status" -eq 0 ]
	[ "$output" = only-in-image ]
	# nothing was converted for them
	[ "$(grep -c . "$U/conversions.log")" -eq 1 ]
}

@test "SIGKILL while the SIF is written publishes nothing; the next pull converts" {
	python3 "$MKIMAGE" legacy "$WORK/big.tar" --big-mb 120 >/dev/null
	P=$(mktemp -d "$WORK/run.XXXXXX")
	mkdir -p "$P/cache"
	printf 'SingularityPath=%s\nSingularityImageFormat=sif\n' "$SING" >"$P/berth.conf"
	BERTH_CONFIG="$P/berth.conf" "$BERTH" pull --runtime singularity --cache-dir "$P/cache" \
		--singularity "$SING" "$WORK/big.tar" >"$P/out" 2>&1 &
	pid=$!
	n=0
	until compgen -G "$P/cache/0/tmp/*/entry/$SIFLEAF" >/dev/null; do
		n=$((n + 1))
		[ "$n" -lt 2000000 ] && kill -0 "$pid" 2>/dev/null || break
	done
	kill -KILL "$pid"
	wait "$pid" || true
	[ ! -s "$P/out" ] # killed before publishing
	[ -z "$(ls -A "$P/cache/0/images")" ]
	# the SIF is merged from the layers: no flattened tree was made
	# (the tree path's sif-tree folder would be complete by now)
	[ -z "$(find "$P/cache/0/tmp" -name sif-tree)" ]
	[ "$(find "$P/cache/0/tmp" -mindepth 3 | wc -l)" -le 1 ]
	run env BERTH_CONFIG="$P/berth.conf" "$BERTH" pull --runtime singularity \
		--cache-dir "$P/cache" --singularity "$SING" "$WORK/big.tar"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *" converted" ]]
	[ -z "$(ls -A "$P/cache/0/tmp")" ]
	[ -f "$P/cache/0/images/$(cut -d' ' -f1 <<<"$output" | cut -d: -f2)/$SIFLEAF" ]
}

@test "the SIF conversion of a 200 MB image stays under 64 MB of memory" {
	python3 "$MKIMAGE" legacy "$WORK/big2.tar" --big-mb 200 >/dev/null
	P=$(mktemp -d "$WORK/run.XXXXXX")
	mkdir -p "$P/cache"
	printf 'SingularityPath=%s\nSingularityImageFormat=sif\n' "$SING" >"$P/berth.conf"
	run env BERTH_CONFIG="$P/berth.conf" /usr/bin/time -f 'maxrss=%M' "$BERTH" pull \
		--runtime singularity --cache-dir "$P/cache" --singularity "$SING" "$WORK/big2.tar"
	echo "$output"
	[ "$status" -eq 0 ]
	kb=$(sed -n 's/^maxrss=//p' <<<"$output")
	[ "$kb" -lt 65536 ]
}

# ---- the SIF merged straight from the layers, against the tree path --------

# sif_of HOW ARCHIVE: stage ARCHIVE as a SIF into a fresh cache, HOW "tree"
# (BERTH_SIF_FROM_TREE=1: flattened on disk, then written) or "direct";
# sets S (the SIF) or fails with the message in $output.
sif_of() {
	local how=$1 archive=$2 p
	p=$(mktemp -d "$WORK/run.XXXXXX")
	mkdir -p "$p/cache"
	printf 'SingularityPath=%s\nSingularityImageFormat=sif\n' "$SING" >"$p/berth.conf"
	run env BERTH_SIF_FROM_TREE=$([ "$how" = tree ] && echo 1 || echo 0) \
		BERTH_CONFIG="$p/berth.conf" "$BERTH" pull --runtime singularity \
		--cache-dir "$p/cache" --singularity "$SING" "$archive"
	S=$(compgen -G "$p/cache/0/images/*/$SIFLEAF" || true)
	LEFT=$(find "$p/cache/0/tmp" -mindepth 1 2>/dev/null | head -3)
}

@test "direct SIF: the same entries, modes, links and bytes as the tree path's, every fixture layout" {
	local fx=(
		"legacy" "oci --gzip-archive --gzip-layers" "multi" "device-nodes"
		"setuid" "million-entries --count 3000" "legacy --big-mb 3"
	)
	for f in "${fx[@]}"; do
		local a=$WORK/fx-${f// /_}.tar ref
		# shellcheck disable=SC2086 # the options are words
		python3 "$MKIMAGE" $f "$a" >/dev/null
		[[ $f != multi ]] || a="$a#berth/two:2"
		sif_of tree "$a"
		echo "tree $f: $output"
		[ -n "$S" ]
		python3 "$REPO/tests/harness/fixtures/sqfs-listing.py" "$S" >"$WORK/tree.lst"
		sif_of direct "$a"
		echo "direct $f: $output"
		[ -n "$S" ]
		python3 "$REPO/tests/harness/fixtures/sqfs-listing.py" "$S" >"$WORK/direct.lst"
		diff "$WORK/tree.lst" "$WORK/direct.lst"
		[ "$(grep -c '^tar ' "$WORK/direct.lst")" -gt 20 ]
	done
	# the fixture's whiteouts, opaque folder and hard link are in there
	grep -q '^tar bin/busybox-hardlink 1 ' "$WORK/direct.lst"
	! grep -q 'removed-by-whiteout' "$WORK/direct.lst"
}

@test "direct SIF: hostile archives are refused as the tree path refuses them, nothing published" {
	local bad=(dotdot absolute symlink-escape symlink-chain hardlink-escape whiteout-dotdot
		truncated digest-mismatch)
	for k in "${bad[@]}"; do
		python3 "$MKIMAGE" "$k" "$WORK/bad-$k.tar" >/dev/null
		sif_of tree "$WORK/bad-$k.tar"
		local want=$output
		[ -z "$S" ]
		sif_of direct "$WORK/bad-$k.tar"
		echo "$k: tree: $want"
		echo "$k: direct: $output"
		[ "$status" -ne 0 ]
		[ -z "$S" ]
		[ -z "$LEFT" ]
		[ "$output" = "$want" ]
	done
}

@test "direct SIF: staging creates no file, folder or link of the image on disk" {
	command -v strace >/dev/null || skip "strace is not installed"
	python3 "$MKIMAGE" legacy "$WORK/st.tar" >/dev/null
	P=$(mktemp -d "$WORK/run.XXXXXX")
	mkdir -p "$P/cache"
	printf 'SingularityPath=%s\nSingularityImageFormat=sif\n' "$SING" >"$P/berth.conf"
	run env BERTH_CONFIG="$P/berth.conf" strace -f -qq -o "$P/trace" -e status=successful \
		-e trace=mkdir,mkdirat,symlink,symlinkat,link,linkat,open,openat,creat \
		"$BERTH" pull --runtime singularity --cache-dir "$P/cache" --singularity "$SING" \
		"$WORK/st.tar"
	[ "$status" -eq 0 ]
	# the image has folders, files, symlinks and a hard link: none reach the disk
	! grep -E 'symlink|link(at)?\(' "$P/trace"
	# what is created: the cache's own folders and files, and the SIF
	made=$(grep -cE 'mkdir|O_CREAT' "$P/trace")
	echo "created: $made"
	grep -E 'mkdir|O_CREAT' "$P/trace"
	! grep -q sif-tree "$P/trace"
	[ "$made" -lt 40 ] # the image alone has more than 80 entries
}
