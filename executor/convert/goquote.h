/* berth: Go's view of strings, byte for byte, for the files Apptainer
 * generates: strconv.Quote, encoding/json's string encoding and the shell
 * escapes of Apptainer's internal/pkg/util/shell/escape.go.  Each appends
 * to a growing string (out of memory is remembered there). */
#ifndef BERTH_GOQUOTE_H
#define BERTH_GOQUOTE_H

#include "executor/base/strbuf.h"

/* strconv.Quote; unassigned code points stay as they are (Go escapes
 * them as \u....: berth has no Unicode tables). */
void berth_go_quote(struct berth_sb *b, const char *str);

/* encoding/json's string encoding (HTML-safe, as json.Marshal does). */
void berth_go_json_string(struct berth_sb *b, const char *str);

/* shell.Escape: \ " ` $ get a backslash. */
void berth_go_shell_escape(struct berth_sb *b, const char *s);

/* shell.EscapeSingleQuotes: ' -> '"'"' */
void berth_go_shell_escape_sq(struct berth_sb *b, const char *s);

#endif
