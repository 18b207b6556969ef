/* berth: libyaml, loaded when first needed (as libcurl is: curl_lazy.h).
 *
 * Only a YAML CDI spec (executor/runtime/cdi.c) needs it, on GPU nodes; a
 * start that reads none maps nothing of it.  Include this header instead
 * of <yaml.h>. */
#ifndef BERTH_YAML_LAZY_H
#define BERTH_YAML_LAZY_H

#include <yaml.h>

#include "conf/error.h"

struct berth_yaml_fns {
	int (*parser_initialize)(yaml_parser_t *);
	void (*parser_delete)(yaml_parser_t *);
	void (*parser_set_input_string)(yaml_parser_t *, const unsigned char *, size_t);
	int (*parser_load)(yaml_parser_t *, yaml_document_t *);
	void (*document_delete)(yaml_document_t *);
	yaml_node_t *(*document_get_node)(yaml_document_t *, int);
	yaml_node_t *(*document_get_root_node)(yaml_document_t *);
};

/* Load libyaml (once): 0, or -1 with the reason and what to install. */
int berth_yaml_load(struct berth_err *err);

/* The table; call berth_yaml_load first. */
const struct berth_yaml_fns *berth_yaml(void);

#define yaml_parser_initialize(p) (berth_yaml()->parser_initialize(p))
#define yaml_parser_delete(p) (berth_yaml()->parser_delete(p))
#define yaml_parser_set_input_string(p, s, n) (berth_yaml()->parser_set_input_string((p), (s), (n)))
#define yaml_parser_load(p, d) (berth_yaml()->parser_load((p), (d)))
#define yaml_document_delete(d) (berth_yaml()->document_delete(d))
#define yaml_document_get_node(d, i) (berth_yaml()->document_get_node((d), (i)))
#define yaml_document_get_root_node(d) (berth_yaml()->document_get_root_node(d))

#endif
