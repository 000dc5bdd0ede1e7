/* replay_main.c - a main() for the fuzz targets when libFuzzer is not
 * linked (the ordinary gcc build): runs LLVMFuzzerTestOneInput once per file
 * named on the command line or found in a directory named there (one level).
 * Under --config=asan this turns the seed corpus and every crash input kept
 * in fuzz/regressions/ into a regression test. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    fprintf(stderr, "replay: cannot open %s\n", path);
    return -1;
  }
  size_t cap = 4096, len = 0, n;
  uint8_t *buf = malloc(cap);
  while (buf && (n = fread(buf + len, 1, cap - len, f)) > 0) {
    len += n;
    if (len == cap) buf = realloc(buf, cap *= 2);
  }
  fclose(f);
  if (buf == NULL) return -1;
  /* A copy of exactly len bytes, so ASan sees reads past the input. */
  uint8_t *exact = malloc(len ? len : 1);
  if (exact == NULL) return -1;
  memcpy(exact, buf, len);
  free(buf);
  LLVMFuzzerTestOneInput(exact, len);
  free(exact);
  return 0;
}

static int run_dir(const char *dir, int *count) {
  DIR *d = opendir(dir);
  if (d == NULL) return run_file(dir) == 0 ? (++*count, 0) : -1;
  struct dirent *de;
  int rc = 0;
  while ((de = readdir(d)) != NULL) {
    if (de->d_name[0] == '.') continue;
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) continue;
    if (run_file(path) != 0) rc = -1;
    ++*count;
  }
  closedir(d);
  return rc;
}

int main(int argc, char **argv) {
  int count = 0, rc = 0;
  for (int i = 1; i < argc; i++) {
    if (run_dir(argv[i], &count) != 0) rc = 1;
  }
  printf("replayed %d inputs\n", count);
  return rc;
}
