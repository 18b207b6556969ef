/* berth: Go's view of strings, byte for byte: strconv.Quote,
 * encoding/json's string encoding and Apptainer's shell escapes
 * (internal/pkg/util/shell/escape.go), as Apptainer writes the generated
 * /.singularity.d files with them (see goquote.h). */
#include "executor/convert/goquote.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* utf8.DecodeRune: the rune at s and its width; -1 and width 1 when the
 * bytes are not valid UTF-8 (Go's RuneError). */
static size_t utf8_rune(const unsigned char *s, size_t n, int32_t *r)
{
	unsigned c = s[0];
	unsigned lo = 0x80, hi = 0xBF;
	size_t width;

	*r = -1;
	if (c < 0x80) {
		*r = (int32_t)c;
		return 1;
	}
	if (c < 0xC2 || c > 0xF4)
		return 1;
	if (c < 0xE0) {
		width = 2;
		*r = (int32_t)(c & 0x1F);
	} else if (c < 0xF0) {
		width = 3;
		*r = (int32_t)(c & 0x0F);
		if (c == 0xE0)
			lo = 0xA0;
		else if (c == 0xED)
			hi = 0x9F;
	} else {
		width = 4;
		*r = (int32_t)(c & 0x07);
		if (c == 0xF0)
			lo = 0x90;
		else if (c == 0xF4)
			hi = 0x8F;
	}
	if (n < width) {
		*r = -1;
		return 1;
	}
	for (size_t i = 1; i < width; i++) {
		unsigned cc = s[i];
		if (cc < (i == 1 ? lo : 0x80) || cc > (i == 1 ? hi : 0xBF)) {
			*r = -1;
			return 1;
		}
		*r = (*r << 6) | (int32_t)(cc & 0x3F);
	}
	return width;
}

/* strconv.IsPrint for the code points that matter: ASCII exactly; above
 * it, the separators, format and control characters and private use
 * areas are not printable (Go's tables also exclude unassigned points). */
static bool go_isprint(int32_t r)
{
	if (r < 0x80)
		return r >= 0x20 && r < 0x7F;
	if (r < 0xA1 || r == 0xAD)
		return false;
	if ((r >= 0x600 && r <= 0x605) || r == 0x61C || r == 0x6DD || r == 0x70F ||
	    r == 0x8E2 || r == 0x1680 || r == 0x180E || (r >= 0x2000 && r <= 0x200F) ||
	    (r >= 0x2028 && r <= 0x202F) || (r >= 0x205F && r <= 0x206F) ||
	    r == 0x3000 || (r >= 0xD800 && r <= 0xF8FF) || r == 0xFEFF ||
	    (r >= 0xFFF9 && r <= 0xFFFB) || r == 0xFFFE || r == 0xFFFF ||
	    r == 0x110BD || r == 0x110CD || (r >= 0x13430 && r <= 0x1343F) ||
	    (r >= 0x1BCA0 && r <= 0x1BCA3) || (r >= 0x1D173 && r <= 0x1D17A) ||
	    r == 0xE0001 || (r >= 0xE0020 && r <= 0xE007F) || r >= 0xF0000)
		return false;
	return true;
}

static const char hexdig[] = "0123456789abcdef";

/* strconv.Quote */
void berth_go_quote(struct berth_sb *b, const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t n = strlen(str);

	berth_sb_addc(b, '"');
	for (size_t i = 0; i < n;) {
		int32_t r;
		size_t w = utf8_rune(s + i, n - i, &r);
		if (r < 0) {
			berth_sb_printf(b, "\\x%c%c", hexdig[s[i] >> 4], hexdig[s[i] & 15]);
		} else if (r == '"' || r == '\\') {
			berth_sb_addc(b, '\\');
			berth_sb_addc(b, (char)r);
		} else if (go_isprint(r)) {
			berth_sb_addn(b, (const char *)s + i, w);
		} else {
			switch (r) {
			case '\a': berth_sb_add(b, "\\a"); break;
			case '\b': berth_sb_add(b, "\\b"); break;
			case '\f': berth_sb_add(b, "\\f"); break;
			case '\n': berth_sb_add(b, "\\n"); break;
			case '\r': berth_sb_add(b, "\\r"); break;
			case '\t': berth_sb_add(b, "\\t"); break;
			case '\v': berth_sb_add(b, "\\v"); break;
			default:
				if (r < ' ' || r == 0x7F)
					berth_sb_printf(b, "\\x%c%c", hexdig[r >> 4],
							hexdig[r & 15]);
				else if (r < 0x10000)
					berth_sb_printf(b, "\\u%04x", (unsigned)r);
				else
					berth_sb_printf(b, "\\U%08x", (unsigned)r);
			}
		}
		i += w;
	}
	berth_sb_addc(b, '"');
}

/* encoding/json's string encoding (HTML-safe, as json.Marshal does). */
void berth_go_json_string(struct berth_sb *b, const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t n = strlen(str);

	berth_sb_addc(b, '"');
	for (size_t i = 0; i < n;) {
		unsigned c = s[i];
		if (c < 0x80) {
			switch (c) {
			case '"': berth_sb_add(b, "\\\""); break;
			case '\\': berth_sb_add(b, "\\\\"); break;
			case '\b': berth_sb_add(b, "\\b"); break;
			case '\f': berth_sb_add(b, "\\f"); break;
			case '\n': berth_sb_add(b, "\\n"); break;
			case '\r': berth_sb_add(b, "\\r"); break;
			case '\t': berth_sb_add(b, "\\t"); break;
			default:
				if (c < 0x20 || c == '<' || c == '>' || c == '&')
					berth_sb_printf(b, "\\u00%c%c", hexdig[c >> 4],
							hexdig[c & 15]);
				else
					berth_sb_addc(b, (char)c);
			}
			i++;
			continue;
		}
		int32_t r;
		size_t w = utf8_rune(s + i, n - i, &r);
		if (r < 0)
			berth_sb_add(b, "\\ufffd");
		else if (r == 0x2028 || r == 0x2029)
			berth_sb_printf(b, "\\u%04x", (unsigned)r);
		else
			berth_sb_addn(b, (const char *)s + i, w);
		i += w;
	}
	berth_sb_addc(b, '"');
}

/* shell.Escape: \ " ` $ get a backslash. */
void berth_go_shell_escape(struct berth_sb *b, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"' || *s == '`' || *s == '$')
			berth_sb_addc(b, '\\');
		berth_sb_addc(b, *s);
	}
}

/* shell.EscapeSingleQuotes: ' -> '"'"' */
void berth_go_shell_escape_sq(struct berth_sb *b, const char *s)
{
	for (; *s; s++) {
		if (*s == '\'')
			berth_sb_add(b, "'\"'\"'");
		else
			berth_sb_addc(b, *s);
	}
}
