/* test_log.c - log lines in both formats: the text line as before, the
 * JSON line with the same keys (quoted values with spaces and quotes,
 * bare values, a word without '='), written whole, one per line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <jansson.h>

#include "server/log.h"

/* Runs one oee_log call with stderr sent to a pipe; returns the line. */
static char *capture(oee_log_format format, const char *msg, const char *fields) {
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  int saved = dup(STDERR_FILENO);
  assert_true(saved >= 0);
  assert_true(dup2(fds[1], STDERR_FILENO) >= 0);
  oee_log_set_format(format);
  oee_log(OEE_LOG_WARN, msg, "%s", fields);
  oee_log_set_format(OEE_LOG_TEXT);
  assert_true(dup2(saved, STDERR_FILENO) >= 0);
  close(saved);
  close(fds[1]);
  static char buf[4096];
  ssize_t n = read(fds[0], buf, sizeof(buf) - 1);
  close(fds[0]);
  assert_true(n > 0);
  buf[n] = '\0';
  return buf;
}

static void test_text_line(void **state) {
  (void)state;
  char *line = capture(OEE_LOG_TEXT, "store_failed", "data_dir=/tmp/x error=\"disk full\"");
  assert_int_equal(strncmp(line, "ts=", 3), 0);
  assert_non_null(strstr(line,
                         " level=warn msg=store_failed data_dir=/tmp/x "
                         "error=\"disk full\"\n"));
  assert_non_null(strchr(line, '\n'));
  assert_int_equal(strchr(line, '\n')[1], '\0'); /* one line */
}

static void test_json_line(void **state) {
  (void)state;
  char *line = capture(OEE_LOG_JSON, "store_failed",
                       "data_dir=/tmp/x error=\"cannot \"open\" it\" count=3 lonely");
  size_t len = strlen(line);
  assert_true(len > 1 && line[len - 1] == '\n' && strchr(line, '\n') == line + len - 1);
  json_error_t jerr;
  json_t *o = json_loads(line, 0, &jerr);
  if (o == NULL) fail_msg("not JSON (%s): %s", jerr.text, line);
  assert_true(json_is_object(o));
  const char *ts = json_string_value(json_object_get(o, "ts"));
  assert_non_null(ts);
  assert_int_equal(strlen(ts), strlen("2026-11-27T21:50:00.123Z"));
  assert_string_equal(json_string_value(json_object_get(o, "level")), "warn");
  assert_string_equal(json_string_value(json_object_get(o, "msg")), "store_failed");
  assert_string_equal(json_string_value(json_object_get(o, "data_dir")), "/tmp/x");
  assert_string_equal(json_string_value(json_object_get(o, "error")), "cannot \"open\" it");
  assert_string_equal(json_string_value(json_object_get(o, "count")), "3");
  assert_string_equal(json_string_value(json_object_get(o, "lonely")), "");
  assert_int_equal(json_object_size(o), 7);
  json_decref(o);
}

static void test_conversion_edges(void **state) {
  (void)state;
  char *j = oee_log_text_to_json("ts=t level=info msg=m cut=\"no end");
  assert_non_null(j);
  json_t *o = json_loads(j, 0, NULL);
  assert_non_null(o);
  assert_string_equal(json_string_value(json_object_get(o, "cut")), "\"no end");
  json_decref(o);
  free(j);
  j = oee_log_text_to_json("ts=t level=info msg=m empty=\"\" tab=a\tb");
  o = json_loads(j, 0, NULL);
  assert_non_null(o);
  assert_string_equal(json_string_value(json_object_get(o, "empty")), "");
  assert_string_equal(json_string_value(json_object_get(o, "tab")), "a\tb");
  json_decref(o);
  free(j);
  assert_int_equal(oee_log_parse_format("json"), OEE_LOG_JSON);
  assert_int_equal(oee_log_parse_format("text"), OEE_LOG_TEXT);
  assert_int_equal(oee_log_parse_format("xml"), -1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_text_line),
      cmocka_unit_test(test_json_line),
      cmocka_unit_test(test_conversion_edges),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
