#define _GNU_SOURCE
#include "executor/base/dl/yaml_lazy.h"
#include "executor/base/dl/lazy.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#define LIBYAML "libyaml-0.so.2"

/* What every entry does when libyaml is missing: fail, as on error. */
static int no_init(yaml_parser_t *p) { (void)p; return 0; }
static void no_parser_delete(yaml_parser_t *p) { (void)p; }
static void no_input(yaml_parser_t *p, const unsigned char *s, size_t n) { (void)p, (void)s, (void)n; }
static int no_load(yaml_parser_t *p, yaml_document_t *d) { (void)p, (void)d; return 0; }
static void no_doc_delete(yaml_document_t *d) { (void)d; }
static yaml_node_t *no_node(yaml_document_t *d, int i) { (void)d, (void)i; return NULL; }
static yaml_node_t *no_root(yaml_document_t *d) { (void)d; return NULL; }

static char load_error[512];
static bool loaded;

static struct berth_yaml_fns table = {
	no_init, no_parser_delete, no_input, no_load, no_doc_delete, no_node, no_root,
};

static void load_once(void)
{
	static const struct berth_lazy_sym symbols[] = {
		{"yaml_parser_initialize", offsetof(struct berth_yaml_fns, parser_initialize)},
		{"yaml_parser_delete", offsetof(struct berth_yaml_fns, parser_delete)},
		{"yaml_parser_set_input_string",
		 offsetof(struct berth_yaml_fns, parser_set_input_string)},
		{"yaml_parser_load", offsetof(struct berth_yaml_fns, parser_load)},
		{"yaml_document_delete", offsetof(struct berth_yaml_fns, document_delete)},
		{"yaml_document_get_node", offsetof(struct berth_yaml_fns, document_get_node)},
		{"yaml_document_get_root_node",
		 offsetof(struct berth_yaml_fns, document_get_root_node)},
	};
	struct berth_yaml_fns fns;

	if (berth_lazy_fill(LIBYAML, symbols, sizeof(symbols) / sizeof(*symbols), &fns,
			    load_error, sizeof(load_error)) < 0)
		return;
	table = fns;
	loaded = true;
}

const struct berth_yaml_fns *berth_yaml(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, load_once);
	return &table;
}

int berth_yaml_load(struct berth_err *err)
{
	(void)berth_yaml();
	if (!loaded)
		return berth_fail(err, 0, "cannot load %s (%s), which YAML CDI specs need; "
				  "install libyaml-0-2, or use JSON specs", LIBYAML,
				  load_error[0] ? load_error : "unknown error");
	return 0;
}
