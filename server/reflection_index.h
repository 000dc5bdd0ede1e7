/*
 * reflection_index.h - private to reflection.c and reflection_index.c: the
 * symbol index built once at start-up from the embedded descriptor sets.
 * Built on the start-up thread, read-only afterwards (CQ thread).
 */
#ifndef OEE_SERVER_REFLECTION_INDEX_H
#define OEE_SERVER_REFLECTION_INDEX_H

#include <stddef.h>

#include "google/protobuf/descriptor.pb-c.h"
#include "server/reflection.h"

typedef struct file {
  Google__Protobuf__FileDescriptorProto *fd; /* parsed, for names */
  ProtobufCBinaryData raw;                   /* the bytes served */
  size_t *deps;                              /* indices into files */
  size_t n_deps;
} file;

typedef struct symbol {
  char *name; /* fully qualified, without the leading dot */
  size_t file;
} symbol;

struct oee_reflection {
  file *files;
  size_t n_files;
  symbol *symbols;
  size_t n_symbols, cap_symbols;
  char **services;
  size_t n_services;
};

/* Splits every embedded descriptor set into its files, parses them and
 * indexes their symbols (sorted). 0, or -1 when out of memory or a set does
 * not parse; what was built is freed by oee__reflection_index_free(). */
int oee__reflection_index(oee_reflection *r);
/* Frees the files and symbols (not the services). */
void oee__reflection_index_free(oee_reflection *r);
/* The index of the file of that name, or -1. */
long oee__reflection_file_find(const oee_reflection *r, const char *name);
/* The index of the file defining the fully qualified symbol (a leading dot
 * allowed), or -1. */
long oee__reflection_symbol_file(const oee_reflection *r, const char *name);

#endif /* OEE_SERVER_REFLECTION_INDEX_H */
