/* Unit tests for executor/imageref.c: every form users write, Docker's
 * normalisation, and every refusal with its message. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "executor/source/imageref.h"

#define HEX "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static void parses_to(const char *text, const char *dflt, const char *registry,
		      const char *repository, const char *tag, const char *digest)
{
	struct berth_imageref ref;
	struct berth_err err = {0};

	if (berth_imageref_parse(text, dflt, &ref, &err) < 0)
		fail_msg("'%s' refused: %s", text, err.msg);
	assert_string_equal(ref.registry, registry);
	assert_string_equal(ref.repository, repository);
	assert_string_equal(ref.tag, tag);
	assert_string_equal(ref.digest, digest);
}

static void refused(const char *text, const char *why)
{
	struct berth_imageref ref;
	struct berth_err err = {0};

	assert_int_equal(berth_imageref_parse(text, NULL, &ref, &err), -1);
	if (!strstr(err.msg, why))
		fail_msg("'%s': message '%s' lacks '%s'", text, err.msg, why);
}

static void test_bare_forms(void **state)
{
	(void)state;
	parses_to("ubuntu", NULL, BERTH_DOCKER_HUB, "library/ubuntu", "latest", "");
	parses_to("ubuntu:22.04", NULL, BERTH_DOCKER_HUB, "library/ubuntu", "22.04", "");
	parses_to("nvidia/cuda:12.4.1-base", NULL, BERTH_DOCKER_HUB, "nvidia/cuda", "12.4.1-base", "");
	parses_to("ubuntu@sha256:" HEX, NULL, BERTH_DOCKER_HUB, "library/ubuntu", "", "sha256:" HEX);
	parses_to("ubuntu:22.04@sha256:" HEX, NULL, BERTH_DOCKER_HUB, "library/ubuntu", "22.04",
		  "sha256:" HEX);
	parses_to("quay.io/biocontainers/samtools:1.19--h50ea8bc_0", NULL, "quay.io",
		  "biocontainers/samtools", "1.19--h50ea8bc_0", "");
	parses_to("localhost/tool", NULL, "localhost", "tool", "latest", "");
	parses_to("127.0.0.1:5000/berth/test:1", NULL, "127.0.0.1:5000", "berth/test", "1", "");
	parses_to("a__b-c---d/e.f_g", NULL, BERTH_DOCKER_HUB, "a__b-c---d/e.f_g", "latest", "");
}

static void test_docker_scheme(void **state)
{
	(void)state;
	parses_to("docker://ubuntu:22.04", NULL, BERTH_DOCKER_HUB, "library/ubuntu", "22.04", "");
	parses_to("docker://docker.io/library/ubuntu", NULL, BERTH_DOCKER_HUB, "library/ubuntu",
		  "latest", "");
	parses_to("docker://index.docker.io/ubuntu", NULL, BERTH_DOCKER_HUB, "library/ubuntu",
		  "latest", "");
	parses_to("docker://ghcr.io/owner/app@sha256:" HEX, NULL, "ghcr.io", "owner/app", "",
		  "sha256:" HEX);
	parses_to("docker://[::1]:5000/x:y", NULL, "[::1]:5000", "x", "y", "");
}

static void test_enroot_forms(void **state)
{
	(void)state;
	parses_to("nvcr.io#nvidia/pytorch:24.05-py3", NULL, "nvcr.io", "nvidia/pytorch",
		  "24.05-py3", "");
	parses_to("127.0.0.1:5000#berth/test", NULL, "127.0.0.1:5000", "berth/test", "latest", "");
	/* a registry before '#' is taken as one even without a dot */
	parses_to("registry#tool:1", NULL, "registry", "tool", "1", "");
}

static void test_site_default_registry(void **state)
{
	(void)state;
	/* a site's registry: no "library/" (that is Docker Hub's convention) */
	parses_to("ubuntu:22.04", "mirror.site.org:5000", "mirror.site.org:5000", "ubuntu", "22.04", "");
	parses_to("ubuntu", "", BERTH_DOCKER_HUB, "library/ubuntu", "latest", "");
	/* an explicit registry wins over the default */
	parses_to("ghcr.io/a/b", "mirror.site.org", "ghcr.io", "a/b", "latest", "");
}

static void test_refusals(void **state)
{
	(void)state;
	refused("", "is empty");
	refused("docker://", "is empty");
	refused("Ubuntu:22.04", "not a valid repository name");
	refused("ubuntu:", "not a valid tag");
	refused("ubuntu:-x", "not a valid tag");
	refused("ubuntu:a b", "not a valid tag");
	refused("ubuntu@sha256:abc", "64 lowercase hex digits");
	refused("ubuntu@md5:" HEX, "64 lowercase hex digits");
	refused("ubuntu@sha256:" HEX "0", "64 lowercase hex digits");
	refused("a//b", "not a valid repository name");
	refused("a/b/", "not a valid repository name");
	refused("-a", "not a valid repository name");
	refused("a-", "not a valid repository name");
	refused("a..b", "not a valid repository name");
	refused("a___b", "not a valid repository name");
	refused("host:99999999/a", "not a registry");
	refused("host:/a", "not a registry");
	refused("bad_host#a", "not a registry");
	refused("#a", "not a registry");
	refused("[::1#a", "not a registry");
	/* the message says how to write one */
	refused("Bad", "e.g. ubuntu:22.04");
}

static void test_too_long(void **state)
{
	char text[1200];

	(void)state;
	memset(text, 'a', sizeof(text) - 1);
	text[sizeof(text) - 1] = '\0';
	refused(text, "too long");
	snprintf(text, sizeof(text), "ubuntu:%0130d", 1);
	refused(text, "too long");
}

static void test_format(void **state)
{
	struct berth_imageref ref;
	struct berth_err err = {0};
	char out[768];

	(void)state;
	assert_int_equal(berth_imageref_parse("nvcr.io#nvidia/pytorch:24.05-py3", NULL, &ref, &err), 0);
	berth_imageref_format(&ref, out, sizeof(out));
	assert_string_equal(out, "nvcr.io/nvidia/pytorch:24.05-py3");
	assert_int_equal(berth_imageref_parse("ubuntu@sha256:" HEX, NULL, &ref, &err), 0);
	berth_imageref_format(&ref, out, sizeof(out));
	assert_string_equal(out, BERTH_DOCKER_HUB "/library/ubuntu@sha256:" HEX);
	/* the formatted form parses back to the same reference */
	struct berth_imageref again;
	assert_int_equal(berth_imageref_parse(out, NULL, &again, &err), 0);
	assert_memory_equal(&ref, &again, sizeof(ref));
}

/* Findings of tests/fuzz/fuzz_imageref.c: what berth_imageref_format
 * writes (the pinned form handed to the nodes) must parse back to the same
 * reference. */
static void test_format_round_trips(void **state)
{
	static const char *const texts[] = {
		"myreg#lab/tool:1",          /* a registry name without '.' or ':' */
		"dock0000#0000001",
		"[::1]:5000#lab/tool:2",
		"localhost#x",
		"registry.example.org:5000/lab/tool@sha256:"
		"0000000000000000000000000000000000000000000000000000000000000000",
	};
	struct berth_imageref ref, again;
	struct berth_err err = {0};
	char text[600];

	(void)state;
	for (size_t i = 0; i < sizeof(texts) / sizeof(*texts); i++) {
		assert_int_equal(berth_imageref_parse(texts[i], NULL, &ref, &err), 0);
		berth_imageref_format(&ref, text, sizeof(text));
		assert_int_equal(berth_imageref_parse(text, NULL, &again, &err), 0);
		assert_string_equal(ref.registry, again.registry);
		assert_string_equal(ref.repository, again.repository);
		assert_string_equal(ref.tag, again.tag);
		assert_string_equal(ref.digest, again.digest);
	}
	berth_imageref_parse("myreg#lab/tool:1", NULL, &ref, &err);
	berth_imageref_format(&ref, text, sizeof(text));
	assert_string_equal(text, "myreg#lab/tool:1");
	/* a bracketed registry must hold an IPv6 address */
	assert_int_equal(berth_imageref_parse("[@0]:8#np", NULL, &ref, &err), -1);
	assert_non_null(strstr(err.msg, "is not a registry host[:port]"));
}

/* Names meant as files never go to a registry, whatever they parse as. */
static void test_looks_like_path(void **state)
{
	(void)state;
	assert_true(berth_imageref_looks_like_path("/shared/img.tar"));
	assert_true(berth_imageref_looks_like_path("./img"));
	assert_true(berth_imageref_looks_like_path("../x/img"));
	assert_true(berth_imageref_looks_like_path("~/img"));
	assert_true(berth_imageref_looks_like_path("img.tar"));     /* also a valid repository */
	assert_true(berth_imageref_looks_like_path("img.tar.gz#berth/x:1"));
	assert_true(berth_imageref_looks_like_path("tool.sif"));
	assert_true(berth_imageref_looks_like_path("lab/tool.sqsh"));
	assert_false(berth_imageref_looks_like_path("ubuntu:22.04"));
	assert_false(berth_imageref_looks_like_path("nvcr.io#nvidia/pytorch:24.05-py3"));
	assert_false(berth_imageref_looks_like_path("registry.example.org:5000/lab/tar"));
	assert_false(berth_imageref_looks_like_path("lab/tarball"));
}

/* A URL's pin travels as one word and comes back byte for byte. */
static void test_pin_encoding(void **state)
{
	char word[256], back[128];

	(void)state;
	berth_pin_encode("etag:\"abc 1%\"", word, sizeof(word));
	assert_string_equal(word, "etag:%22abc%201%25%22");
	assert_int_equal(berth_pin_decode(word, back, sizeof(back)), 0);
	assert_string_equal(back, "etag:\"abc 1%\"");
	berth_pin_encode("lm:Sun, 29 Nov 2026 23:00:00 GMT", word, sizeof(word));
	assert_null(strchr(word, ' '));
	assert_int_equal(berth_pin_decode(word, back, sizeof(back)), 0);
	assert_string_equal(back, "lm:Sun, 29 Nov 2026 23:00:00 GMT");
	assert_int_equal(berth_pin_decode("bad%2", back, sizeof(back)), -1);
	assert_int_equal(berth_pin_decode("bad%zz", back, sizeof(back)), -1);
	assert_int_equal(berth_pin_decode("nul%00", back, sizeof(back)), -1);
	assert_int_equal(berth_pin_decode("long", back, 4), -1); /* no room for the NUL */
}

/* ---- URLs as messages show them (issue 23 item 7) ------------------------ */

static void masks_to(const char *image, const char *want, bool masked)
{
	char out[512];

	assert_int_equal(berth_url_masked(image, out, sizeof(out)), masked);
	assert_string_equal(out, want);
}

static void test_mask_userinfo(void **state)
{
	(void)state;
	masks_to("https://user:hunter2@host/x.tar", "https://***@host/x.tar", true);
	masks_to("http://token@host:8080/x.tar", "http://***@host:8080/x.tar", true);
	/* an unencoded '@' in the password: the last one ends the userinfo */
	masks_to("https://u:p@ss@host/x.tar", "https://***@host/x.tar", true);
	masks_to("https://u:pw@host", "https://***@host", true);
	masks_to("HTTPS://u:pw@host/x", "HTTPS://***@host/x", true);
	masks_to("file://u:pw@localhost/x.tar", "file://***@localhost/x.tar", true);
}

static void test_mask_query_fragment(void **state)
{
	(void)state;
	masks_to("https://host/x.tar?X-Amz-Signature=abc&X-Amz-Credential=k",
		 "https://host/x.tar?***", true);
	masks_to("https://u:pw@host/x.tar?sig=s#repo:tag", "https://***@host/x.tar?***#repo:tag",
		 true);
	masks_to("https://host/x.tar#repo:tag", "https://host/x.tar#repo:tag", false);
	/* a '?' after the '#' belongs to the fragment: nothing is sent */
	masks_to("https://host/x.tar#a?b", "https://host/x.tar#a?b", false);
	masks_to("https://host?sig=s", "https://host?***", true);
	masks_to("https://u:pw@host?sig=s", "https://***@host?***", true);
	masks_to("https://host/x.tar?", "https://host/x.tar?***", true);
}

static void test_mask_hosts_and_paths(void **state)
{
	(void)state;
	masks_to("http://[::1]:8080/x.tar", "http://[::1]:8080/x.tar", false);
	masks_to("http://u:pw@[::1]:8080/x.tar?s=1", "http://***@[::1]:8080/x.tar?***", true);
	masks_to("http://[fe80::1%25eth0]/x.tar", "http://[fe80::1%25eth0]/x.tar", false);
	/* an '@' in the path is not userinfo (RFC 3986, as libcurl reads it) */
	masks_to("https://host/team@site/x.tar", "https://host/team@site/x.tar", false);
	masks_to("https://host/a@b?x=1", "https://host/a@b?***", true);
	masks_to("https://u:pw@host/a@b", "https://***@host/a@b", true);
}

static void test_mask_leaves_others(void **state)
{
	(void)state;
	/* no scheme: a path or a registry reference, shown as written */
	masks_to("/data/img.tar", "/data/img.tar", false);
	masks_to("user:pass@host/x.tar?a=b", "user:pass@host/x.tar?a=b", false);
	masks_to("ubuntu:22.04", "ubuntu:22.04", false);
	masks_to("nvcr.io#nvidia/pytorch:24.01-py3", "nvcr.io#nvidia/pytorch:24.01-py3", false);
	masks_to("reg:5000/r@sha256:0123", "reg:5000/r@sha256:0123", false);
	masks_to("docker://repo@sha256:0123", "docker://repo@sha256:0123", false);
	masks_to("docker://reg/r:t@sha256:0123", "docker://reg/r:t@sha256:0123", false);
	masks_to("", "", false);
	masks_to("://u:pw@host", "://u:pw@host", false); /* not a URL */
}

static void test_mask_cut_never_reveals(void **state)
{
	char out[32];

	(void)state;
	berth_url_masked("https://u:pw@host/x.tar?sig=secret", out, 16);
	assert_string_equal(out, "https://***@hos");
	berth_url_masked("https://host/a?sig=secret", out, 20);
	assert_string_equal(out, "https://host/a?***");
	berth_url_masked("https://u:secret@h", out, 1);
	assert_string_equal(out, "");
}

static void test_scrub_text(void **state)
{
	char out[256];

	(void)state;
	berth_url_scrub("Maximum (5) redirects followed to https://u:pw@cdn/x?Signature=s2 now",
			out, sizeof(out));
	assert_string_equal(out, "Maximum (5) redirects followed to https://***@cdn/x?*** now");
	berth_url_scrub("Location: 'http://h/x?a=1' and \"http://h/y?b=2\"", out, sizeof(out));
	assert_string_equal(out, "Location: 'http://h/x?***' and \"http://h/y?***\"");
	berth_url_scrub("no url here: a@b?c", out, sizeof(out));
	assert_string_equal(out, "no url here: a@b?c");
	berth_url_scrub("xhttp://u:pw@h/", out, sizeof(out)); /* a scheme "xhttp" */
	assert_string_equal(out, "xhttp://***@h/");
}

static void test_pin_key(void **state)
{
	char a[256], b[256];

	(void)state;
	/* nothing secret: the URL itself, as pins always were */
	assert_true(berth_url_pin_key("http://127.0.0.1:8/img.tar", a, sizeof(a)));
	assert_string_equal(a, "http://127.0.0.1:8/img.tar");
	/* secret: masked, plus a hash that tells two such URLs apart */
	assert_true(berth_url_pin_key("https://u:pw@h/x.tar?sig=1", a, sizeof(a)));
	assert_true(berth_url_pin_key("https://u:pw@h/x.tar?sig=2", b, sizeof(b)));
	assert_non_null(strstr(a, "https://***@h/x.tar?***|sha256:"));
	assert_int_equal(strlen(a), strlen("https://***@h/x.tar?***|sha256:") + 64);
	assert_string_not_equal(a, b);
	assert_null(strstr(a, "pw"));
	assert_null(strchr(a, ' ')); /* pins are space-separated */
	assert_false(berth_url_pin_key("https://u:pw@h/x.tar?sig=1", a, 40));
	assert_false(berth_url_pin_key("http://127.0.0.1:8/img.tar", a, 10));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bare_forms),
		cmocka_unit_test(test_docker_scheme),
		cmocka_unit_test(test_enroot_forms),
		cmocka_unit_test(test_site_default_registry),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_too_long),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_format_round_trips),
		cmocka_unit_test(test_looks_like_path),
		cmocka_unit_test(test_pin_encoding),
		cmocka_unit_test(test_mask_userinfo),
		cmocka_unit_test(test_mask_query_fragment),
		cmocka_unit_test(test_mask_hosts_and_paths),
		cmocka_unit_test(test_mask_leaves_others),
		cmocka_unit_test(test_mask_cut_never_reveals),
		cmocka_unit_test(test_scrub_text),
		cmocka_unit_test(test_pin_key),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
