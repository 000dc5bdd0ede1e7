/* names.c - proto name mangling (see names.h). */
#include "tools/protoc-gen-grpcc/names.h"

#include <ctype.h>
#include <string.h>

#include "tools/protoc-gen-grpcc/buf.h"

/* protoc-c's ToCamel: capitalise the first letter and every letter after
 * '_', drop the underscores. */
static void camel_piece(buf *b, const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '_') continue;
    int first = i == 0 || s[i - 1] == '_';
    buf_printf(b, "%c", first ? toupper((unsigned char)s[i]) : s[i]);
  }
}

/* protoc-c's CamelToLower: '_' before an upper-case letter that follows a
 * non-upper-case character, then lower-case everything. */
static void lower_piece(buf *b, const char *s, size_t n) {
  int was_upper = 1;
  for (size_t i = 0; i < n; i++) {
    int up = isupper((unsigned char)s[i]) != 0;
    if (up && !was_upper) buf_printf(b, "_");
    buf_printf(b, "%c", tolower((unsigned char)s[i]));
    was_upper = up;
  }
}

static char *join_pieces(const char *full, void (*piece)(buf *, const char *, size_t)) {
  buf b = {0};
  const char *p = full;
  int first = 1;
  while (*p) {
    const char *dot = strchr(p, '.');
    size_t n = dot ? (size_t)(dot - p) : strlen(p);
    if (n > 0) {
      if (!first) buf_printf(&b, "__");
      piece(&b, p, n);
      first = 0;
    }
    p += n + (dot ? 1 : 0);
  }
  return buf_take(&b);
}

char *names_c_type(const char *full_name) { return join_pieces(full_name, camel_piece); }

char *names_c_lower(const char *full_name) { return join_pieces(full_name, lower_piece); }

char *names_snake(const char *s) {
  buf b = {0};
  size_t n = strlen(s);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (isupper(c) && i > 0) {
      unsigned char prev = (unsigned char)s[i - 1];
      int next_lower = i + 1 < n && islower((unsigned char)s[i + 1]);
      if (islower(prev) || isdigit(prev) || (isupper(prev) && next_lower)) buf_printf(&b, "_");
    }
    buf_printf(&b, "%c", tolower(c));
  }
  return buf_take(&b);
}

char *names_package(const char *package) {
  buf b = {0};
  for (const char *p = package; *p; p++)
    buf_printf(&b, "%c", *p == '.' ? '_' : tolower((unsigned char)*p));
  return buf_take(&b);
}

char *names_upper(char *s) {
  for (char *p = s; *p; p++) *p = (char)toupper((unsigned char)*p);
  return s;
}

char *names_strip_proto(const char *file_name) {
  size_t n = strlen(file_name);
  if (n > 6 && strcmp(file_name + n - 6, ".proto") == 0) n -= 6;
  return str_printf("%.*s", (int)n, file_name);
}
