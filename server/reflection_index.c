/*
 * reflection_index.c - the symbol index reflection answers from (see
 * reflection_index.h and the DESIGN in reflection.c).
 *
 * Every allocation goes through core/oee_alloc.h, the parsed descriptors
 * included (a protobuf-c allocator over it), so a failure injected at
 * start-up fails oee_reflection_create() cleanly.
 */
#include "server/reflection_index.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/oee_alloc.h"

extern const size_t oee_descriptor_blob_count;
extern const unsigned char *const oee_descriptor_blobs[];
extern const size_t oee_descriptor_blob_sizes[];

static void *pb_alloc(void *ud, size_t n) {
  (void)ud;
  return oee_malloc(n);
}

static void pb_free(void *ud, void *p) {
  (void)ud;
  oee_free(p);
}

/* protobuf-c's allocator interface over oee_malloc()/oee_free(). */
static ProtobufCAllocator pb_allocator = {pb_alloc, pb_free, NULL};

static int add_symbol(oee_reflection *r, const char *prefix, const char *name, size_t f) {
  if (r->n_symbols == r->cap_symbols) {
    size_t cap = r->cap_symbols ? r->cap_symbols * 2 : 256;
    symbol *s = oee_realloc(r->symbols, cap * sizeof(*s));
    if (s == NULL) return -1;
    r->symbols = s;
    r->cap_symbols = cap;
  }
  size_t len = strlen(prefix) + strlen(name) + 2;
  char *full = oee_malloc(len);
  if (full == NULL) return -1;
  snprintf(full, len, "%s%s%s", prefix, prefix[0] ? "." : "", name);
  r->symbols[r->n_symbols++] = (symbol){full, f};
  return 0;
}

static int index_enums(oee_reflection *r, const char *prefix,
                       Google__Protobuf__EnumDescriptorProto **e, size_t n, size_t f) {
  for (size_t i = 0; i < n; i++) {
    if (add_symbol(r, prefix, e[i]->name, f) != 0) return -1;
  }
  return 0;
}

static int index_message(oee_reflection *r, const char *prefix,
                         const Google__Protobuf__DescriptorProto *m, size_t f) {
  if (add_symbol(r, prefix, m->name, f) != 0) return -1;
  const char *full = r->symbols[r->n_symbols - 1].name;
  char *scope = oee_strdup(full);
  int rc = scope ? 0 : -1;
  for (size_t i = 0; rc == 0 && i < m->n_field; i++)
    rc = add_symbol(r, scope, m->field[i]->name, f);
  for (size_t i = 0; rc == 0 && i < m->n_nested_type; i++)
    rc = index_message(r, scope, m->nested_type[i], f);
  if (rc == 0) rc = index_enums(r, scope, m->enum_type, m->n_enum_type, f);
  oee_free(scope);
  return rc;
}

static int index_services(oee_reflection *r, const char *pkg, size_t f) {
  const Google__Protobuf__FileDescriptorProto *fd = r->files[f].fd;
  for (size_t i = 0; i < fd->n_service; i++) {
    const Google__Protobuf__ServiceDescriptorProto *s = fd->service[i];
    if (add_symbol(r, pkg, s->name, f) != 0) return -1;
    char *scope = oee_strdup(r->symbols[r->n_symbols - 1].name);
    if (scope == NULL) return -1;
    for (size_t k = 0; k < s->n_method; k++) {
      if (add_symbol(r, scope, s->method[k]->name, f) != 0) {
        oee_free(scope);
        return -1;
      }
    }
    oee_free(scope);
  }
  return 0;
}

static int index_file(oee_reflection *r, size_t f) {
  const Google__Protobuf__FileDescriptorProto *fd = r->files[f].fd;
  const char *pkg = fd->package ? fd->package : "";
  for (size_t i = 0; i < fd->n_message_type; i++) {
    if (index_message(r, pkg, fd->message_type[i], f) != 0) return -1;
  }
  if (index_enums(r, pkg, fd->enum_type, fd->n_enum_type, f) != 0) return -1;
  return index_services(r, pkg, f);
}

static int symbol_cmp(const void *a, const void *b) {
  return strcmp(((const symbol *)a)->name, ((const symbol *)b)->name);
}

long oee__reflection_file_find(const oee_reflection *r, const char *name) {
  for (size_t i = 0; i < r->n_files; i++) {
    if (strcmp(r->files[i].fd->name, name) == 0) return (long)i;
  }
  return -1;
}

/* Reads a base-128 varint; 0 on malformed input. */
static size_t varint(const unsigned char *p, size_t len, uint64_t *v) {
  *v = 0;
  for (size_t i = 0; i < len && i < 10; i++) {
    *v |= (uint64_t)(p[i] & 0x7f) << (7 * i);
    if (!(p[i] & 0x80)) return i + 1;
  }
  return 0;
}

/* Adds the files of one FileDescriptorSet (field 1, repeated bytes). */
static int load_set(oee_reflection *r, const unsigned char *p, size_t len) {
  size_t off = 0;
  while (off < len) {
    uint64_t tag, n;
    size_t k = varint(p + off, len - off, &tag);
    if (k == 0 || tag != ((1 << 3) | 2)) return -1;
    off += k;
    k = varint(p + off, len - off, &n);
    if (k == 0 || n > len - off - k) return -1;
    off += k;
    Google__Protobuf__FileDescriptorProto *fd =
        google__protobuf__file_descriptor_proto__unpack(&pb_allocator, n, p + off);
    if (fd == NULL) return -1;
    if (oee__reflection_file_find(r, fd->name) >= 0) {
      google__protobuf__file_descriptor_proto__free_unpacked(fd, &pb_allocator);
    } else {
      file *fs = oee_realloc(r->files, (r->n_files + 1) * sizeof(*fs));
      if (fs == NULL) {
        google__protobuf__file_descriptor_proto__free_unpacked(fd, &pb_allocator);
        return -1;
      }
      r->files = fs;
      r->files[r->n_files++] = (file){fd, {n, (uint8_t *)(uintptr_t)(p + off)}, NULL, 0};
    }
    off += n;
  }
  return 0;
}

static int link_deps(oee_reflection *r) {
  for (size_t f = 0; f < r->n_files; f++) {
    file *fl = &r->files[f];
    fl->deps = oee_calloc(fl->fd->n_dependency + 1, sizeof(*fl->deps));
    if (fl->deps == NULL) return -1;
    for (size_t i = 0; i < fl->fd->n_dependency; i++) {
      long d = oee__reflection_file_find(r, fl->fd->dependency[i]);
      if (d >= 0) fl->deps[fl->n_deps++] = (size_t)d;
    }
    if (index_file(r, f) != 0) return -1;
  }
  qsort(r->symbols, r->n_symbols, sizeof(*r->symbols), symbol_cmp);
  return 0;
}

long oee__reflection_symbol_file(const oee_reflection *r, const char *name) {
  if (name && name[0] == '.') name++;
  symbol key = {(char *)(uintptr_t)(name ? name : ""), 0};
  symbol *s = bsearch(&key, r->symbols, r->n_symbols, sizeof(*r->symbols), symbol_cmp);
  return s ? (long)s->file : -1;
}

int oee__reflection_index(oee_reflection *r) {
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < oee_descriptor_blob_count; i++) {
    rc = load_set(r, oee_descriptor_blobs[i], oee_descriptor_blob_sizes[i]);
  }
  return rc == 0 ? link_deps(r) : rc;
}

void oee__reflection_index_free(oee_reflection *r) {
  for (size_t i = 0; i < r->n_files; i++) {
    google__protobuf__file_descriptor_proto__free_unpacked(r->files[i].fd, &pb_allocator);
    oee_free(r->files[i].deps);
  }
  for (size_t i = 0; i < r->n_symbols; i++) oee_free(r->symbols[i].name);
  oee_free(r->symbols);
  oee_free(r->files);
  r->files = NULL;
  r->symbols = NULL;
  r->n_files = r->n_symbols = r->cap_symbols = 0;
}
