/*
 * names.h - C identifiers derived from proto names.
 *
 * The message names follow protoc-c 1.4.1 exactly (checked against its
 * output): a type ".foo_bar.v2Beta.HTTPRequest" is FooBar__V2Beta__HTTPRequest
 * and its descriptor foo_bar__v2_beta__httprequest__descriptor.
 * Every function returns a malloc'd string the caller frees.
 */
#ifndef OEE_TOOLS_NAMES_H
#define OEE_TOOLS_NAMES_H

/* protoc-c's struct name of a fully qualified type (leading dot optional). */
char *names_c_type(const char *full_name);
/* protoc-c's lower-case symbol prefix of a type, e.g. "oee__v1__task". */
char *names_c_lower(const char *full_name);
/* Snake case for our own identifiers: "OrchestratorService" ->
 * "orchestrator_service", "HTTPServer" -> "http_server". */
char *names_snake(const char *name);
/* Our prefix of a package: "oee.v1" -> "oee_v1" (lower case). */
char *names_package(const char *package);
/* Upper-cases an identifier in place and returns it. */
char *names_upper(char *s);
/* "oee/v1/orchestrator.proto" -> "oee/v1/orchestrator" (no ".proto"). */
char *names_strip_proto(const char *file_name);

#endif
