/* Unit tests for conf/mounts.c: every form pyxis users write, every flag,
 * the canonical text the nodes get, and each refusal with its reason. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "conf/mounts.h"

static void parse_ok(const char *item, const char *base, struct berth_mount *m)
{
	struct berth_err err = {0};

	if (berth_mount_parse_at(item, base, m, &err) < 0)
		fail_msg("'%s' refused: %s", item, err.msg);
}

static void refused(const char *item, const char *base, const char *phrase)
{
	struct berth_err err = {0};
	struct berth_mount m;

	assert_int_equal(berth_mount_parse_at(item, base, &m, &err), -1);
	if (!strstr(err.msg, phrase))
		fail_msg("'%s': message '%s' lacks '%s'", item, err.msg, phrase);
	assert_null(m.src);
	assert_null(m.dst);
}

static void clear(struct berth_mount *m)
{
	free(m->src);
	free(m->dst);
}

static void test_src_dst(void **state)
{
	struct berth_mount m;

	(void)state;
	parse_ok("/data:/in", NULL, &m);
	assert_int_equal(m.kind, BERTH_MOUNT_BIND);
	assert_string_equal(m.src, "/data");
	assert_string_equal(m.dst, "/in");
	assert_false(m.read_only);
	assert_int_equal(m.flags, 0);
	clear(&m);
}

static void test_short_form(void **state)
{
	struct berth_mount m;

	(void)state;
	parse_ok("/var/lib", NULL, &m);
	assert_string_equal(m.src, "/var/lib");
	assert_string_equal(m.dst, "/var/lib");
	clear(&m);
	refused("data", "/home/u", "must be absolute");
}

static void test_relative_sources(void **state)
{
	struct berth_mount m;

	(void)state;
	parse_ok("./:/mnt", "/home/u/run", &m);
	assert_string_equal(m.src, "/home/u/run");
	clear(&m);
	parse_ok("out/x/:/o", "/home/u", &m);
	assert_string_equal(m.src, "/home/u/out/x");
	clear(&m);
	parse_ok(".:/o", "/", &m);
	assert_string_equal(m.src, "/");
	clear(&m);
	/* without a submission folder, a relative source has no meaning */
	refused("./:/mnt", NULL, "must be absolute");
	refused("../data:/mnt", "/home/u", "'..'");
}

static void test_paths_cleaned(void **state)
{
	struct berth_mount m;

	(void)state;
	parse_ok("//data/./x//:/in/./y/", NULL, &m);
	assert_string_equal(m.src, "/data/x");
	assert_string_equal(m.dst, "/in/y");
	clear(&m);
}

static void test_flags(void **state)
{
	struct berth_mount m;

	(void)state;
	parse_ok("/tmp:/mnt:unbindable+ro", NULL, &m);
	assert_true(m.read_only);
	assert_int_equal(m.propagation, BERTH_PROP_UNBINDABLE);
	clear(&m);
	parse_ok("/tmp:/mnt:nosuid+nodev+noexec+rw+rslave", NULL, &m);
	assert_false(m.read_only);
	assert_int_equal(m.flags, BERTH_MNT_NOSUID | BERTH_MNT_NODEV | BERTH_MNT_NOEXEC);
	assert_int_equal(m.propagation, BERTH_PROP_RSLAVE);
	clear(&m);
	static const char *const props[] = {"private", "rprivate", "slave", "rslave",
					    "unbindable", "runbindable"};
	for (size_t i = 0; i < 6; i++) {
		char item[64];
		snprintf(item, sizeof(item), "/a:/b:%s", props[i]);
		parse_ok(item, NULL, &m);
		assert_string_equal(berth_propagation_name(m.propagation), props[i]);
		clear(&m);
	}
}

static void test_tmpfs(void **state)
{
	struct berth_mount m;

	(void)state;
	parse_ok("tmpfs:/scratch", NULL, &m);
	assert_int_equal(m.kind, BERTH_MOUNT_TMPFS);
	assert_string_equal(m.dst, "/scratch");
	assert_int_equal(m.tmpfs_size, 0);
	assert_false(m.tmpfs_mode_set);
	clear(&m);
	parse_ok("tmpfs:/scratch:size=64m+mode=0700+noexec", NULL, &m);
	assert_int_equal(m.tmpfs_size, 64ull << 20);
	assert_true(m.tmpfs_mode_set);
	assert_int_equal(m.tmpfs_mode, 0700);
	assert_int_equal(m.flags, BERTH_MNT_NOEXEC);
	clear(&m);
	refused("tmpfs", NULL, "needs its target");
	refused("tmpfs:/s:size=lots", NULL, "not a size");
	refused("tmpfs:/s:size=-1", NULL, "not a size");
	refused("tmpfs:/s:mode=999", NULL, "octal");
	refused("tmpfs:/s:ro", NULL, "always empty");
	refused("tmpfs:/s:private", NULL, "unknown tmpfs option");
	/* tmpfs(5)'s own options pass through, checked */
	parse_ok("tmpfs:/s:nr_inodes=64+huge=within_size+size=10%+mpol=bind:0-1+inode64",
		 NULL, &m);
	assert_string_equal(m.tmpfs_extra,
			    "nr_inodes=64,huge=within_size,size=10%,mpol=bind:0-1,inode64");
	assert_int_equal(m.tmpfs_size, 0);
	clear(&m);
	refused("tmpfs:/s:huge=sometimes", NULL, "not a value tmpfs(5) takes");
	refused("tmpfs:/s:nr_inodes=many", NULL, "not a value tmpfs(5) takes");
	refused("tmpfs:/s:mpol=bind:0;1", NULL, "not a value tmpfs(5) takes");
	refused("tmpfs:/s:size=x%", NULL, "not a value tmpfs(5) takes");
	refused("tmpfs:/s:uid=0", NULL, "the tmpfs belongs to you");
	refused("tmpfs:/s:noswap", NULL, "unknown tmpfs option 'noswap'");
	refused("/a:/b:huge=always", NULL, "unknown flag 'huge=always'");
	/* umount:DST, alone */
	parse_ok("umount:/etc/passwd", NULL, &m);
	assert_int_equal(m.kind, BERTH_MOUNT_UMOUNT);
	assert_string_equal(m.dst, "/etc/passwd");
	char *text = berth_mounts_format(&m, 1);
	assert_string_equal(text, "umount:/etc/passwd");
	free(text);
	clear(&m);
	refused("umount:/etc/passwd:ro", NULL, "with no flags");
	refused("umount", NULL, "write umount:/DST");
	refused("umount:", NULL, "an empty field");
	refused("/a:/b:size=1m", NULL, "unknown flag 'size=1m'");
}

static void test_refusals(void **state)
{
	(void)state;
	refused(":", NULL, "empty field");
	refused("/tmp:", NULL, "empty field");
	refused(":/tmp", NULL, "empty field");
	refused("/a:/b:", NULL, "empty field");
	refused("/home:../home", NULL, "must be absolute");
	refused("/home:/x/../home", NULL, "'..'");
	refused("/a:b", NULL, "must be absolute");
	refused("/a:/", NULL, "container's root");
	refused("/a:/b:rx", NULL, "unknown flag 'rx'");
	refused("/a:/b:ro+rw", NULL, "both ro and rw");
	refused("/a:/b:ro++nodev", NULL, "empty flag");
	refused("/a:/b:slave+private", NULL, "two propagation flags");
	refused("/a:/b:c:d", NULL, "cannot be bound");
	refused("/a,b:/c", NULL, "','");
}

static void test_list(void **state)
{
	struct berth_err err = {0};
	struct berth_mount *ms = NULL;
	size_t n = 0;

	(void)state;
	assert_int_equal(berth_mounts_parse_list_at("./:/t,/dev/null:/null,/home:/h:ro", "/w",
						    &ms, &n, &err), 0);
	assert_int_equal(n, 3);
	assert_string_equal(ms[0].src, "/w");
	assert_string_equal(ms[1].dst, "/null");
	assert_true(ms[2].read_only);
	berth_mounts_free(ms, n);
	assert_int_equal(berth_mounts_parse_list("/a:/b,", &ms, &n, &err), -1);
	assert_non_null(strstr(err.msg, "empty item"));
	assert_int_equal(berth_mounts_parse_list("", &ms, &n, &err), -1);
	assert_int_equal(berth_mounts_parse_list(",/a:/b", &ms, &n, &err), -1);
}

/* What the nodes get reads back to the same mounts, relative to nothing. */
static void test_canonical_round_trip(void **state)
{
	struct berth_err err = {0};
	struct berth_mount *a = NULL, *b = NULL;
	size_t na = 0, nb = 0;

	(void)state;
	assert_int_equal(berth_mounts_parse_list_at(
				 "data:/d:ro+nosuid+rslave,/x,tmpfs:/t:size=1g+mode=0+noexec+nodev+"
				 "nr_inodes=8k+huge=advise",
				 "/w", &a, &na, &err), 0);
	char *text = berth_mounts_format(a, na);
	assert_non_null(text);
	assert_string_equal(text, "/w/data:/d:ro+nosuid+rslave,/x:/x:rw,"
				  "tmpfs:/t:rw+nodev+noexec+size=1073741824+mode=0000+"
				  "nr_inodes=8k+huge=advise");
	assert_int_equal(berth_mounts_parse_list(text, &b, &nb, &err), 0);
	assert_int_equal(na, nb);
	for (size_t i = 0; i < na; i++) {
		assert_int_equal(a[i].kind, b[i].kind);
		assert_string_equal(a[i].src, b[i].src);
		assert_string_equal(a[i].dst, b[i].dst);
		assert_int_equal(a[i].read_only, b[i].read_only);
		assert_int_equal(a[i].flags, b[i].flags);
		assert_int_equal(a[i].propagation, b[i].propagation);
		assert_int_equal(a[i].tmpfs_size, b[i].tmpfs_size);
		assert_int_equal(a[i].tmpfs_mode, b[i].tmpfs_mode);
		assert_int_equal(a[i].tmpfs_mode_set, b[i].tmpfs_mode_set);
		assert_string_equal(a[i].tmpfs_extra, b[i].tmpfs_extra);
	}
	free(text);
	berth_mounts_free(a, na);
	berth_mounts_free(b, nb);
}

/* Parents first, the order given kept among equals; the nearest holder. */
static void test_sort_nested(void **state)
{
	(void)state;
	struct berth_err err = {0};
	struct berth_mount *m = NULL;
	size_t n = 0;

	assert_int_equal(berth_mounts_parse_list("/d:/mnt/out/in/deep,/i:/mnt/out/in:ro,"
						 "/x:/mnt/outer,/o:/mnt/out,/t:/t",
						 &m, &n, &err), 0);
	berth_mounts_sort(m, n);
	static const char *const want[] = {"/t", "/mnt/outer", "/mnt/out", "/mnt/out/in",
					   "/mnt/out/in/deep"};
	for (size_t i = 0; i < n; i++)
		assert_string_equal(m[i].dst, want[i]);
	assert_true(m[3].read_only);
	assert_int_equal(berth_mount_parent(m, 0), -1);
	assert_int_equal(berth_mount_parent(m, 1), -1);
	assert_int_equal(berth_mount_parent(m, 2), -1); /* /mnt/outer is no parent */
	assert_int_equal(berth_mount_parent(m, 3), 2);
	assert_int_equal(berth_mount_parent(m, 4), 3);
	assert_int_equal(berth_mount_holding(m, n, "/mnt/out"), 2);
	assert_int_equal(berth_mount_holding(m, n, "/mnt/out/in/deep/w"), 4);
	assert_int_equal(berth_mount_holding(m, n, "/mnt/outx"), -1);
	berth_mounts_free(m, n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_src_dst),
		cmocka_unit_test(test_short_form),
		cmocka_unit_test(test_relative_sources),
		cmocka_unit_test(test_paths_cleaned),
		cmocka_unit_test(test_flags),
		cmocka_unit_test(test_tmpfs),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_list),
		cmocka_unit_test(test_canonical_round_trip),
		cmocka_unit_test(test_sort_nested),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
